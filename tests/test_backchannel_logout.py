"""POST /backchannel-logout/{provider}: the IdP ends a session, and the bridge with it.

Logout tokens are signed with the fake IdP's real keys (or forged on purpose) and
posted as the IdP would. With store = "redis" the sessions are deleted; with the
cookie store a logout record (in memory, or in Redis) signs them out. Several
instances share one real redis-server.
"""

from __future__ import annotations

import copy
import secrets
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from bridge.logout_token import BACKCHANNEL_LOGOUT_EVENT
from bridge.settings import parse_settings
from bridge.web import create_app
from tests.conftest import PUBLIC_URL, auth, base_settings, login
from tests.idp import ATTACKER_KEY, EC_KEY, FakeIdP, hmac_key, sign, unsigned

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def logout_token(
    idp: FakeIdP, *, key: Any = None, header: dict[str, Any] | None = None, **changes: Any
) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": idp.issuer,
        "aud": idp.client_id,
        "iat": now,
        "exp": now + 120,
        "jti": secrets.token_urlsafe(12),
        "sub": "user-1",
        "sid": "idp-session-1",
        "events": {BACKCHANNEL_LOGOUT_EVENT: {}},
    }
    claims.update(changes)
    claims = {k: v for k, v in claims.items() if v is not None}
    return sign(
        claims,
        header or {"alg": "RS256", "kid": "rsa-1", "typ": "logout+jwt"},
        key or idp.signing_key,
    )


def post_logout(client: TestClient, token: str, provider: str = "acme") -> httpx.Response:
    return client.post(
        f"/backchannel-logout/{provider}", content=f"logout_token={token}", headers=FORM
    )


def assert_refused(response: httpx.Response, description: str) -> None:
    assert response.status_code == 400
    assert response.headers["cache-control"] == "no-store"
    assert response.json() == {"error": "invalid_request", "error_description": description}


@pytest.fixture(params=["redis", "cookie+redis", "cookie"])
def setup(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def instance(
    setup: str,
    request: pytest.FixtureRequest,
    idps: dict[str, FakeIdP],
    entered: Callable[[Any], TestClient],
) -> Callable[[], TestClient]:
    """A browser (or the IdP) on an instance of its own; ``cookie`` means one process."""
    data = copy.deepcopy(base_settings())
    if setup != "cookie":
        data["session"]["redis_url"] = request.getfixturevalue("redis_url")
        data["session"]["store"] = setup.split("+")[0]
    settings = parse_settings(data)
    shared = create_app(settings, warm_up=False)
    # Without a shared store every client is on the one process (one app, one loop).
    return lambda: entered(shared if setup == "cookie" else create_app(settings, warm_up=False))


def signed_in(instance: Callable[[], TestClient], idp: FakeIdP, sid: str) -> TestClient:
    idp.user["sid"] = sid
    browser = instance()
    assert login(browser, idp).status_code == 303
    assert auth(browser).status_code == 200
    return browser


def test_logout_by_sid_ends_that_idp_session_only(
    instance: Callable[[], TestClient], idp: FakeIdP
) -> None:
    laptop = signed_in(instance, idp, "idp-session-1")
    phone = signed_in(instance, idp, "idp-session-2")
    response = post_logout(instance(), logout_token(idp, sid="idp-session-1"))
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["cache-control"] == "no-store"
    assert auth(laptop).json() == {"error": "not_signed_in"}
    assert auth(phone).status_code == 200


def test_logout_by_sub_ends_every_session_of_that_person(
    instance: Callable[[], TestClient], idp: FakeIdP, idps: dict[str, FakeIdP]
) -> None:
    laptop = signed_in(instance, idp, "idp-session-1")
    phone = signed_in(instance, idp, "idp-session-2")
    idp.user["sub"] = "someone-else"
    other = signed_in(instance, idp, "idp-session-3")
    response = post_logout(instance(), logout_token(idp, sid=None, sub="user-1"))
    assert response.status_code == 200
    assert auth(laptop).status_code == 401
    assert auth(phone).status_code == 401
    assert auth(other).status_code == 200


def test_logout_at_one_provider_leaves_the_same_sub_at_another_signed_in(
    instance: Callable[[], TestClient], idps: dict[str, FakeIdP]
) -> None:
    browser = instance()
    idps["generic"].user["sid"] = "idp-session-1"
    assert login(browser, idps["generic"], "generic").status_code == 303
    response = post_logout(instance(), logout_token(idps["acme"], sid=None, sub="user-1"))
    assert response.status_code == 200
    assert auth(browser).status_code == 200


def test_an_es256_logout_token_is_accepted(
    instance: Callable[[], TestClient], idp: FakeIdP
) -> None:
    browser = signed_in(instance, idp, "idp-session-1")
    token = logout_token(idp, key=EC_KEY, header={"alg": "ES256", "kid": "ec-1"})
    assert post_logout(instance(), token).status_code == 200
    assert auth(browser).status_code == 401


# --- the certification's negative cases, through the route ------------------------------


@pytest.fixture
def victim(instance: Callable[[], TestClient], idp: FakeIdP) -> TestClient:
    return signed_in(instance, idp, "idp-session-1")


@pytest.fixture
def idp_side(instance: Callable[[], TestClient], victim: TestClient) -> TestClient:
    return instance()


def test_rp_backchannel_lt_alg_none(idp_side: TestClient, victim: TestClient, idp: FakeIdP) -> None:
    token = unsigned(
        {"iss": idp.issuer, "aud": idp.client_id, "iat": int(time.time()), "jti": "j1",
         "sid": "idp-session-1", "events": {BACKCHANNEL_LOGOUT_EVENT: {}}},
        {"typ": "logout+jwt"},
    )  # fmt: skip
    assert_refused(
        post_logout(idp_side, token),
        "acme: logout token algorithm 'none' is not one the IdP advertises (RS256, ES256)",
    )
    assert auth(victim).status_code == 200


def test_rp_backchannel_lt_bad_signature(
    idp_side: TestClient, victim: TestClient, idp: FakeIdP
) -> None:
    assert_refused(
        post_logout(idp_side, logout_token(idp, key=ATTACKER_KEY)),
        "acme: the logout token's signature matches no key of the IdP's JWKS (kid='rsa-1')",
    )
    assert auth(victim).status_code == 200


def test_rp_backchannel_lt_wrong_alg(
    idp_side: TestClient, victim: TestClient, idp: FakeIdP
) -> None:
    token = logout_token(idp, key=hmac_key(idp.client_secret), header={"alg": "HS256"})
    assert_refused(
        post_logout(idp_side, token),
        "acme: logout token algorithm 'HS256' is not one the IdP advertises (RS256, ES256)",
    )
    assert auth(victim).status_code == 200


@pytest.mark.parametrize(
    ("changes", "description"),
    [
        ({"events": None}, "the events claim is missing or not an object"),
        (
            {"events": {"http://schemas.openid.net/event/other": {}}},
            "the events claim has no back-channel logout event",
        ),
        ({"nonce": "n-0S6_WzA2Mj"}, "a logout token must not carry a nonce"),
        ({"aud": "another-client"}, "the audience does not include this client"),
        ({"iss": "https://evil.test"}, "the issuer is not this provider's"),
        ({"sid": None, "sub": None}, "the token names neither a sub nor a sid"),
        ({"iat": int(time.time()) - 3600, "exp": None}, "iat is more than 300 s old"),
        ({"exp": int(time.time()) - 3600}, "the token has expired"),
    ],
    ids=["no-events", "wrong-event", "with-nonce", "wrong-aud", "wrong-issuer",
         "neither-sid-nor-sub", "old-iat", "expired"],
)  # fmt: skip
def test_rp_backchannel_lt_invalid_claims(
    idp_side: TestClient,
    victim: TestClient,
    idp: FakeIdP,
    changes: dict[str, Any],
    description: str,
) -> None:
    assert_refused(post_logout(idp_side, logout_token(idp, **changes)), description)
    assert auth(victim).status_code == 200


def test_rp_backchannel_lt_replayed_jti(instance: Callable[[], TestClient], idp: FakeIdP) -> None:
    token = logout_token(idp, sid="idp-session-1")
    assert post_logout(instance(), token).status_code == 200
    assert_refused(
        post_logout(instance(), token), "the jti was used before (a replayed logout token)"
    )


def test_the_same_jti_from_another_provider_is_not_a_replay(
    instance: Callable[[], TestClient], idps: dict[str, FakeIdP]
) -> None:
    assert post_logout(instance(), logout_token(idps["acme"], jti="shared")).status_code == 200
    token = logout_token(idps["generic"], jti="shared")
    assert post_logout(instance(), token, provider="generic").status_code == 200


@pytest.mark.parametrize(
    ("body", "headers", "description"),
    [
        ("logout_token=x", {"Content-Type": "application/json"},
         "the body is not application/x-www-form-urlencoded"),
        ("", FORM, "the body needs exactly one logout_token"),
        ("logout_token=a&logout_token=b", FORM, "the body needs exactly one logout_token"),
        ("logout_token=" + "a" * 20_000, FORM, "the body is too large"),
        ("logout_token=not-a-jws", FORM,
         "acme: the logout token is not a compact JWS: DecodeError"),
    ],
    ids=["json", "empty", "repeated", "huge", "not-a-jws"],
)  # fmt: skip
def test_malformed_logout_requests_are_400(
    idp_side: TestClient, victim: TestClient, body: str, headers: dict[str, str], description: str
) -> None:
    response = idp_side.post("/backchannel-logout/acme", content=body, headers=headers)
    assert_refused(response, description)
    assert auth(victim).status_code == 200


def test_a_logout_token_for_an_unknown_provider_is_400(idp_side: TestClient, idp: FakeIdP) -> None:
    assert_refused(
        post_logout(idp_side, logout_token(idp), provider="nobody"), "no provider named 'nobody'"
    )


def test_a_logout_token_is_not_a_browser_request_and_needs_no_origin(
    idp_side: TestClient, victim: TestClient, idp: FakeIdP
) -> None:
    response = idp_side.post(
        "/backchannel-logout/acme",
        content=f"logout_token={logout_token(idp)}",
        headers={**FORM, "Origin": "https://sso.acme.test", "Sec-Fetch-Site": "cross-site"},
    )
    assert response.status_code == 200
    assert auth(victim).status_code == 401


def test_sign_out_kills_a_copied_cookie_at_every_instance_with_any_store(
    instance: Callable[[], TestClient], idp: FakeIdP, setup: str
) -> None:
    """Redis store: the session is deleted; cookie store: a logout record for its own id
    (shared through Redis, or this process's memory) ends every copy of the cookie."""
    browser = signed_in(instance, idp, "idp-session-1")
    copy_elsewhere = instance()
    copy_elsewhere.cookies.update(browser.cookies)
    assert auth(copy_elsewhere).status_code == 200
    assert browser.post("/logout", headers={"Origin": PUBLIC_URL}).status_code == 303
    assert auth(copy_elsewhere).json() == {"error": "not_signed_in"}
    again = signed_in(instance, idp, "idp-session-1")
    assert auth(again).status_code == 200


def test_back_channel_logouts_are_counted_by_provider_and_outcome(
    client: TestClient, idp: FakeIdP
) -> None:
    assert post_logout(client, logout_token(idp)).status_code == 200
    assert post_logout(client, logout_token(idp, nonce="n")).status_code == 400
    assert post_logout(client, logout_token(idp), provider="nobody").status_code == 400
    text = client.get("/metrics").text
    for line in (
        'bridge_backchannel_logouts_total{outcome="ok",provider="acme"} 1.0',
        'bridge_backchannel_logouts_total{outcome="invalid_request",provider="acme"} 1.0',
        'bridge_backchannel_logouts_total{outcome="invalid_request",provider="other"} 1.0',
    ):
        assert line in text.splitlines()
