"""Browser-side input: states, callbacks, parameters, session cookies and ``next``.

Whatever a browser (or someone driving one) sends, the answer is a 4xx page and no session.
"""

from __future__ import annotations

import base64
import html
import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
from starlette.testclient import TestClient

from bridge.session_store import CookieSealer
from bridge.web import safe_next
from tests.conftest import PUBLIC_URL, SESSION_SECRET, auth, login, start_login
from tests.idp import FakeIdP
from tests.security import (
    SESSION_MAX_AGE,
    assert_no_session,
    assert_refused,
    assert_signed_in,
    case,
    seal_session,
    session_of,
    set_session_cookie,
)


def _callback(client: TestClient, **params: Any) -> Any:
    return client.get("/callback/acme", params=params)


# --- state --------------------------------------------------------------------------------


def test_callback_with_a_tampered_state_is_refused(client: TestClient, idp: FakeIdP) -> None:
    code, state = idp.authorize(start_login(client))
    response = _callback(client, code=code, state=state[:-1] + ("A" if state[-1] != "A" else "B"))
    assert_refused(response, 400, "state_mismatch")
    assert_no_session(client)
    assert idp.routes["token"].called is False


@pytest.mark.parametrize("state", [None, ""], ids=["absent", "empty"])
def test_callback_without_a_state_is_refused(
    client: TestClient, idp: FakeIdP, state: str | None
) -> None:
    code, _ = idp.authorize(start_login(client))
    params = {"code": code} if state is None else {"code": code, "state": state}
    assert_refused(_callback(client, **params), 400, "state_mismatch")
    assert_no_session(client)
    assert idp.routes["token"].called is False


def test_callback_without_a_flow_is_refused(client: TestClient, idp: FakeIdP) -> None:
    """A callback in a browser that never started a login (login CSRF)."""
    other = TestClient(client.app, base_url=PUBLIC_URL, follow_redirects=False)
    code, state = idp.authorize(start_login(other))
    assert_refused(_callback(client, code=code, state=state), 400, "state_mismatch")
    assert_no_session(client)
    assert idp.routes["token"].called is False


def test_replayed_callback_with_the_old_cookie_is_refused(client: TestClient, idp: FakeIdP) -> None:
    """The cookie alone cannot make a state single-use: the bridge remembers spent states."""
    code, state = idp.authorize(start_login(client))
    old_cookie = client.cookies.get("bridge_session")
    assert old_cookie
    assert_signed_in(_callback(client, code=code, state=state), client)

    set_session_cookie(client, old_cookie)
    assert_refused(_callback(client, code=code, state=state), 400, "state_mismatch")
    assert_no_session(client)
    assert idp.routes["token"].call_count == 1, "the code is never redeemed twice"


def test_replayed_callback_from_another_browser_is_refused(
    new_client: Callable[[], TestClient], idp: FakeIdP
) -> None:
    victim, attacker = new_client(), new_client()
    code, state = idp.authorize(start_login(victim))
    cookie = victim.cookies.get("bridge_session")
    assert cookie
    assert_signed_in(_callback(victim, code=code, state=state), victim)
    set_session_cookie(attacker, cookie)
    assert_refused(_callback(attacker, code=code, state=state), 400, "state_mismatch")
    assert_no_session(attacker)


def test_replayed_callback_in_the_same_browser_is_refused(client: TestClient, idp: FakeIdP) -> None:
    code, state = idp.authorize(start_login(client))
    assert_signed_in(_callback(client, code=code, state=state), client)
    assert_refused(_callback(client, code=code, state=state), 400, "state_mismatch")
    assert auth(client).status_code == 200, "a replay does not end the real session"


def test_state_of_a_failed_callback_cannot_be_reused(client: TestClient, idp: FakeIdP) -> None:
    code, state = idp.authorize(start_login(client))
    assert_refused(_callback(client, state=state), 400, "missing_code")
    assert_refused(_callback(client, code=code, state=state), 400, "state_mismatch")
    assert_no_session(client)


def test_expired_flow_is_refused(
    client: TestClient, idp: FakeIdP, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, state = idp.authorize(start_login(client))
    later = time.time() + 11 * 60
    monkeypatch.setattr("bridge.sessions.time.time", lambda: later)
    assert_refused(_callback(client, code=code, state=state), 400, "state_mismatch")
    assert idp.routes["token"].called is False


# --- code and other parameters ------------------------------------------------------------


@pytest.mark.parametrize("code", [None, ""], ids=["absent", "empty"])
def test_callback_without_a_code_is_refused(
    client: TestClient, idp: FakeIdP, code: str | None
) -> None:
    _, state = idp.authorize(start_login(client))
    params = {"state": state} if code is None else {"state": state, "code": code}
    assert_refused(_callback(client, **params), 400, "missing_code")
    assert_no_session(client)
    assert idp.routes["token"].called is False


@pytest.mark.parametrize("name", ["state", "code", "iss", "error"])
def test_oversized_callback_parameter_is_refused(
    client: TestClient, idp: FakeIdP, name: str
) -> None:
    code, state = idp.authorize(start_login(client))
    params = {"code": code, "state": state, name: "x" * 4097}
    assert_refused(_callback(client, **params), 400, "invalid_request")
    assert_no_session(client)
    assert idp.routes["token"].called is False


def test_oversized_error_description_is_refused(client: TestClient, idp: FakeIdP) -> None:
    _, state = idp.authorize(start_login(client))
    params = {"state": state, "error": "access_denied", "error_description": "x" * 4097}
    assert_refused(_callback(client, **params), 400, "invalid_request")
    assert_no_session(client)


@pytest.mark.parametrize("name", ["state", "code", "iss", "error"])
def test_repeated_callback_parameter_is_refused(
    client: TestClient, idp: FakeIdP, name: str
) -> None:
    code, state = idp.authorize(start_login(client))
    params = [
        ("code", code),
        ("state", state),
        (name, {"state": state, "code": code}.get(name, "x")),
    ]
    if name not in ("state", "code"):
        params.append((name, "y"))
    response = client.get("/callback/acme", params=params)
    assert_refused(response, 400, "invalid_request")
    assert_no_session(client)
    assert idp.routes["token"].called is False


def test_too_many_callback_parameters_are_refused(client: TestClient, idp: FakeIdP) -> None:
    code, state = idp.authorize(start_login(client))
    params = [("code", code), ("state", state)] + [(f"p{i}", "v") for i in range(30)]
    assert_refused(client.get("/callback/acme", params=params), 400, "invalid_request")
    assert idp.routes["token"].called is False


def test_overlong_next_is_dropped(client: TestClient, idp: FakeIdP) -> None:
    response = login(client, idp, next_path="/" + "a" * 600)
    assert response.headers["location"] == f"{PUBLIC_URL}/"


def test_oversized_next_is_refused(client: TestClient) -> None:
    assert_refused(
        client.get("/login/acme", params={"next": "/" + "a" * 5000}), 400, "invalid_request"
    )
    assert_no_session(client)


def test_callback_for_an_unknown_provider_is_a_404_page(client: TestClient) -> None:
    assert_refused(
        client.get("/callback/nope", params={"state": "s", "code": "c"}), 404, "not_found"
    )


# --- session cookies ----------------------------------------------------------------------


def signed_in(**changes: Any) -> dict[str, Any]:
    """A signed-in session as the bridge writes it, signed in now unless changed."""
    session = {
        "sid": "x",
        "p": "acme",
        "u": {"_id": "64f0c0ffee00000000000001_acme_mallory", "firstname": "Mallory"},
        "at": int(time.time()),
    }
    return {**session, **changes}


def test_a_properly_signed_cookie_is_accepted(client: TestClient) -> None:
    """The control case for the refusals below: our own cookie format signs in."""
    set_session_cookie(client, seal_session(signed_in()))
    assert auth(client).status_code == 200


@pytest.mark.parametrize(
    "cookie",
    [
        "",
        "garbage",
        "a.b.c",
        "v1.",
        "v1." + "A" * 40,
        base64.b64encode(json.dumps(signed_in()).encode()).decode(),
        base64.b64encode(json.dumps(signed_in()).encode()).decode() + ".AAAAAA.forged",
        seal_session(signed_in()).replace("v1.", "v2.", 1),
        seal_session(signed_in(), secret="another-secret-0123456789-abcdefghijkl"),
        seal_session(signed_in(), expires_in=-1),
        seal_session(signed_in(at=int(time.time()) - SESSION_MAX_AGE - 1)),
        seal_session(signed_in(at=None)),
        seal_session(signed_in(at="now")),
        CookieSealer(SESSION_SECRET, cookie_name="bridge_session").seal(b"not json"),
        CookieSealer(SESSION_SECRET, cookie_name="bridge_session").seal(b'{"d": {}}'),
        CookieSealer(SESSION_SECRET, cookie_name="bridge_session").seal(b'["e", "d"]'),
        CookieSealer(SESSION_SECRET, cookie_name="another_name").seal(
            json.dumps({"e": int(time.time()) + 60, "d": signed_in()}).encode()
        ),
        "x" * 5000,
        "v1." + "A" * 9000,
    ],
    ids=[
        "empty",
        "garbage",
        "dots",
        "version-only",
        "version-and-noise",
        "unsigned",
        "forged-signature",
        "unknown-version",
        "other-secret",
        "expired-cookie",
        "expired-sign-in",
        "no-sign-in-time",
        "bad-sign-in-time",
        "sealed-garbage",
        "no-expiry",
        "not-an-object",
        "other-cookie-name",
        "huge",
        "huge-sealed-looking",
    ],
)
def test_bad_session_cookie_is_not_signed_in(client: TestClient, cookie: str) -> None:
    response = client.post(
        "/auth", headers={"Origin": PUBLIC_URL, "Cookie": f"bridge_session={cookie}"}
    )
    assert response.status_code == 401
    assert response.json() == {"error": "not_signed_in"}
    page = client.get("/", headers={"Cookie": f"bridge_session={cookie}"})
    assert page.status_code == 200
    assert 'id="signout"' not in page.text


def test_expired_session_from_a_real_login_is_not_signed_in(
    client: TestClient, idp: FakeIdP, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert_signed_in(login(client, idp), client)
    cookie = client.cookies.get("bridge_session")
    later = time.time() + SESSION_MAX_AGE + 1
    monkeypatch.setattr(time, "time", lambda: later)
    answer = client.post(
        "/auth", headers={"Origin": PUBLIC_URL, "Cookie": f"bridge_session={cookie}"}
    )
    assert answer.status_code == 401
    assert_no_session(client)


@pytest.mark.parametrize(
    "data",
    [
        {"u": "a string"},
        {"u": ["_id"]},
        {"u": {"firstname": "no id"}},
        {"u": {"_id": None, "attributes": "x"}},
        {"flows": "not a dict"},
        {"flows": {"s": {"p": "acme"}}},
        {"flows": {"s": "x"}},
        {"flows": {"s": {"p": "acme", "t": "soon"}}},
        {"flows": {"s": {"p": "acme", "t": 1e308}}},
        signed_in(u="a string"),
        signed_in(u={"_id": None, "attributes": "x"}),
        signed_in(seen="x"),
        signed_in(at=True),
        signed_in(at=1e308),
        signed_in(at=-5),
    ],
    ids=str,
)
def test_signed_session_of_an_unexpected_shape_never_errors(
    client: TestClient, idp: FakeIdP, data: dict[str, Any]
) -> None:
    """A cookie written by another version of the bridge: signed out, never a 500."""
    set_session_cookie(client, seal_session(data))
    response = auth(client)
    assert response.status_code in (200, 401)
    assert client.get("/").status_code == 200
    set_session_cookie(client, seal_session(data))
    callback = _callback(client, state="s", code="c")
    assert_refused(callback, 400, "state_mismatch")


def test_login_starts_a_fresh_session_dropping_a_planted_one(
    client: TestClient, idp: FakeIdP
) -> None:
    """Session fixation: whatever the browser carried before, the login replaces it."""
    planted = signed_in(sid="planted-by-attacker", extra="x")
    set_session_cookie(client, seal_session(planted))
    assert_signed_in(login(client, idp), client)
    session = session_of(client)
    assert session["sid"] != "planted-by-attacker"
    assert "extra" not in session
    assert session["u"]["_id"].endswith("_acme_user-1")


# --- next: never another origin -----------------------------------------------------------

REDIRECT_VARIANTS = {
    "protocol-relative": "//evil.test",
    "absolute": "https://evil.test",
    "absolute-path-like": "https://evil.test/%2F",
    "backslash": "/%5Cevil.test",
    "backslash-backslash": "%5C%5Cevil.test",
    "encoded-protocol-relative": "%2F%2Fevil.test",
    "double-encoded": "%252F%252Fevil.test",
    "javascript": "javascript:alert(1)",
    "data": "data:text/html,<script>alert(1)</script>",
    "tab": "/%09/evil.test",
    "newline": "/%0A/evil.test",
    "crlf-header": "/%0D%0ALocation:%20https://evil.test",
    "nul": "/%00/evil.test",
    "del": "/%7F/evil.test",
    "triple-slash": "///evil.test",
    "leading-space": "%20//evil.test",
    "userinfo": "@evil.test",
    "scheme-relative-colon": "http:evil.test",
    "unicode-slash": "/%EF%BC%8Fevil.test",
}


def _lands_on_our_origin(location: str) -> None:
    assert location.startswith(f"{PUBLIC_URL}/"), location
    resolved = urlsplit(urljoin(f"{PUBLIC_URL}/", location))
    assert (resolved.scheme, resolved.netloc) == ("http", "127.0.0.1:8000"), location
    assert not resolved.path.startswith("//"), location
    assert not any(ord(c) < 0x20 or ord(c) == 0x7F for c in location), location
    assert "\\" not in location


def test_next_open_redirect_variants_end_on_our_origin(client: TestClient, idp: FakeIdP) -> None:
    for name, raw in REDIRECT_VARIANTS.items():
        with case(name):
            response = login(client, idp, next_path=raw)
            assert response.status_code == 303
            _lands_on_our_origin(response.headers["location"])


def test_chooser_never_passes_an_open_redirect_along(client: TestClient) -> None:
    for name, raw in REDIRECT_VARIANTS.items():
        page = client.get(f"/login?next={raw}")
        assert page.status_code == 200, name
        for href in page.text.split('href="')[1:]:
            target = html.unescape(href.split('"')[0])
            assert target.startswith(("/", "#")) and not target.startswith("//"), (name, target)
            for value in parse_qs(urlsplit(target).query).get("next", []):
                assert safe_next(value) == value, (name, value)


def test_next_on_our_site_is_kept(client: TestClient, idp: FakeIdP) -> None:
    response = login(client, idp, next_path="/help%3Ftopic%3Dbilling%23top")
    assert response.headers["location"] == f"{PUBLIC_URL}/help?topic=billing#top"
