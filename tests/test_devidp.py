"""The development IdP, driven over HTTP exactly as the bridge and a browser use it."""

from __future__ import annotations

import base64
import hashlib
import html
import logging
import re
import secrets
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

from bridge import devidp
from bridge.devidp import create_dev_idp
from bridge.web import TEMPLATES_DIR

ISSUER = "http://127.0.0.1:8000/dev-idp"
CLIENT_ID = "tiledesk-bridge"
CLIENT_SECRET = "dev-client-secret"
REDIRECT_URI = "http://127.0.0.1:8000/callback/dev"
POST_LOGOUT_URI = "http://127.0.0.1:8000/"
BANNER = "Development identity provider — for local testing only, signs in anyone"


def make_client() -> TestClient:
    """The IdP mounted as the bridge mounts it; requests use another Host on purpose."""
    idp = create_dev_idp(
        issuer=ISSUER,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        redirect_uris=[REDIRECT_URI],
        post_logout_redirect_uris=[POST_LOGOUT_URI],
        templates_dir=TEMPLATES_DIR,
    )
    app = Starlette(routes=[Mount("/dev-idp", app=idp)])
    return TestClient(app, base_url="http://testserver", follow_redirects=False)


@pytest.fixture
def client() -> Iterator[TestClient]:
    with make_client() as test_client:
        yield test_client


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def authorization_params(challenge: str, **overrides: str | None) -> dict[str, str]:
    params: dict[str, str | None] = {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "scope": "openid email profile",
        "state": secrets.token_urlsafe(16),
        "nonce": secrets.token_urlsafe(16),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **overrides,
    }
    return {k: v for k, v in params.items() if v is not None}


def hidden_request(page: str) -> str:
    match = re.search(r'name="authorization_request" value="([^"]*)"', page)
    assert match, "the form carries the authorization request"
    return html.unescape(match.group(1))


def query(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def sign_in(
    client: TestClient,
    *,
    email: str = "ada@example.com",
    name: str = "Ada Lovelace",
    groups: str = "",
    **overrides: str | None,
) -> tuple[dict[str, str], dict[str, str], str]:
    """Authorize + submit the form; returns request params, redirect params, verifier."""
    verifier, challenge = pkce_pair()
    params = authorization_params(challenge, **overrides)
    page = client.get("/dev-idp/authorize", params=params)
    assert page.status_code == 200, page.text
    answer = client.post(
        "/dev-idp/authorize",
        data={
            "authorization_request": hidden_request(page.text),
            "name": name,
            "email": email,
            "groups": groups,
        },
    )
    assert answer.status_code == 302, answer.text
    assert answer.headers["location"].startswith(REDIRECT_URI + "?")
    return params, query(answer.headers["location"]), verifier


def exchange(
    client: TestClient, code: str, verifier: str, auth: tuple[str, str] = (CLIENT_ID, CLIENT_SECRET)
) -> Any:
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "code_verifier": verifier,
    }
    return client.post("/dev-idp/token", data=data, auth=auth)


def tokens_for(client: TestClient, **sign_in_args: str) -> dict[str, Any]:
    _, redirect, verifier = sign_in(client, **sign_in_args)
    response = exchange(client, redirect["code"], verifier)
    assert response.status_code == 200, response.text
    return dict(response.json())


def verified_claims(client: TestClient, id_token: str) -> dict[str, Any]:
    keys = KeySet.import_key_set(client.get("/dev-idp/jwks").json())
    return dict(jwt.decode(id_token, keys, algorithms=["RS256"]).claims)


def test_discovery_uses_issuer_urls_not_the_host_header(client: TestClient) -> None:
    meta = client.get("/dev-idp/.well-known/openid-configuration").json()

    assert meta["issuer"] == ISSUER
    assert meta["authorization_endpoint"] == f"{ISSUER}/authorize"
    assert meta["token_endpoint"] == f"{ISSUER}/token"
    assert meta["jwks_uri"] == f"{ISSUER}/jwks"
    assert meta["userinfo_endpoint"] == f"{ISSUER}/userinfo"
    assert meta["end_session_endpoint"] == f"{ISSUER}/logout"
    assert meta["response_types_supported"] == ["code"]
    assert meta["subject_types_supported"] == ["public"]
    assert meta["id_token_signing_alg_values_supported"] == ["RS256"]
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["token_endpoint_auth_methods_supported"] == [
        "client_secret_basic",
        "client_secret_post",
    ]
    assert meta["scopes_supported"] == ["openid", "email", "profile", "groups"]
    assert meta["grant_types_supported"] == ["authorization_code"]
    assert {"sub", "email", "email_verified", "name", "groups"} <= set(meta["claims_supported"])
    assert meta["authorization_response_iss_parameter_supported"] is True
    assert "testserver" not in str(meta)


def test_authorize_shows_labelled_form_under_a_warning_banner(client: TestClient) -> None:
    _, challenge = pkce_pair()
    page = client.get("/dev-idp/authorize", params=authorization_params(challenge))

    assert page.status_code == 200
    assert BANNER in page.text
    assert re.search(r'<label for="name">Name</label>', page.text)
    assert re.search(r'<input id="name" name="name" type="text" required', page.text)
    assert re.search(r'<label for="email">Email</label>', page.text)
    assert re.search(r'<input id="email" name="email" type="email" required', page.text)
    assert re.search(r'<label for="groups">Groups</label>', page.text)
    assert '<button type="submit">Sign in</button>' in page.text
    assert "<script" not in page.text
    assert page.headers["cache-control"] == "no-store"
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert f"code_challenge={challenge}" in hidden_request(page.text)


def test_code_flow_issues_an_id_token_verifiable_with_the_jwks(client: TestClient) -> None:
    params, redirect, verifier = sign_in(
        client, name="Ada King Lovelace", email="Ada@Example.com", groups="analysts, ops,analysts"
    )
    assert redirect["state"] == params["state"]
    assert redirect["iss"] == ISSUER
    assert redirect["code"]

    response = exchange(client, redirect["code"], verifier)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    token = response.json()
    assert token["token_type"] == "Bearer"
    assert token["expires_in"] == 300

    claims = verified_claims(client, token["id_token"])
    jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": ISSUER},
        aud={"essential": True, "value": CLIENT_ID},
        nonce={"essential": True, "value": params["nonce"]},
        sub={"essential": True},
        exp={"essential": True},
        iat={"essential": True},
        auth_time={"essential": True},
    ).validate(claims)
    assert claims["exp"] - claims["iat"] == 300
    digest = hashlib.sha256(token["access_token"].encode("ascii")).digest()
    assert claims["at_hash"] == base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()
    assert claims["email"] == "Ada@Example.com"
    assert claims["email_verified"] is True
    assert claims["name"] == "Ada King Lovelace"
    assert claims["given_name"] == "Ada King"
    assert claims["family_name"] == "Lovelace"
    assert claims["groups"] == ["analysts", "ops"]
    assert claims["sub"] == "dev-" + hashlib.sha256(b"ada@example.com").hexdigest()[:24]


def test_groups_claim_is_absent_when_no_group_is_given(client: TestClient) -> None:
    claims = verified_claims(client, tokens_for(client, name="Ada")["id_token"])

    assert "groups" not in claims
    assert claims["given_name"] == "Ada"
    assert "family_name" not in claims


def test_email_and_profile_claims_follow_the_scope_but_groups_always_come(
    client: TestClient,
) -> None:
    token = tokens_for(client, scope="openid", groups="ops")

    claims = verified_claims(client, token["id_token"])
    info = client.get(
        "/dev-idp/userinfo", headers={"Authorization": f"Bearer {token['access_token']}"}
    ).json()

    assert token["scope"] == "openid"
    assert not {"email", "email_verified", "name", "given_name", "family_name"} & set(claims)
    assert claims["groups"] == info["groups"] == ["ops"]
    assert info["sub"] == claims["sub"]


def test_token_endpoint_accepts_client_secret_post(client: TestClient) -> None:
    _, redirect, verifier = sign_in(client)

    response = client.post(
        "/dev-idp/token",
        data={
            "grant_type": "authorization_code",
            "code": redirect["code"],
            "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        },
    )

    assert response.status_code == 200, response.text
    assert "id_token" in response.json()


def test_userinfo_returns_the_user_claims_for_the_access_token(client: TestClient) -> None:
    token = tokens_for(client, email="grace@example.com", name="Grace Hopper", groups="navy")
    id_claims = verified_claims(client, token["id_token"])

    for method in ("GET", "POST"):
        info = client.request(
            method,
            "/dev-idp/userinfo",
            headers={"Authorization": f"Bearer {token['access_token']}"},
        )
        assert info.status_code == 200
        assert info.json() == {
            key: id_claims[key]
            for key in (
                "sub",
                "email",
                "email_verified",
                "name",
                "given_name",
                "family_name",
                "groups",
            )
        }


@pytest.mark.parametrize("authorization", ["Bearer not-a-token", None])
def test_userinfo_refuses_a_missing_or_unknown_token(
    client: TestClient, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = client.get("/dev-idp/userinfo", headers=headers)

    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    if authorization:
        assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'


def test_userinfo_refuses_an_expired_access_token(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = tokens_for(client)
    later = int(time.time()) + 301
    monkeypatch.setattr(devidp, "_now", lambda: later)

    response = client.get(
        "/dev-idp/userinfo", headers={"Authorization": f"Bearer {token['access_token']}"}
    )

    assert response.status_code == 401


def test_code_is_single_use_and_a_replay_revokes_its_tokens(client: TestClient) -> None:
    _, redirect, verifier = sign_in(client)
    first = exchange(client, redirect["code"], verifier)
    assert first.status_code == 200

    replay = exchange(client, redirect["code"], verifier)

    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"
    userinfo = client.get(
        "/dev-idp/userinfo", headers={"Authorization": f"Bearer {first.json()['access_token']}"}
    )
    assert userinfo.status_code == 401


def test_code_expires_after_sixty_seconds(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, redirect, verifier = sign_in(client)
    later = int(time.time()) + 61
    monkeypatch.setattr(devidp, "_now", lambda: later)

    response = exchange(client, redirect["code"], verifier)

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


def test_wrong_pkce_verifier_is_refused(client: TestClient) -> None:
    _, redirect, _ = sign_in(client)
    other_verifier, _ = pkce_pair()

    response = exchange(client, redirect["code"], other_verifier)

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    assert "id_token" not in response.json()


def test_missing_pkce_verifier_is_refused(client: TestClient) -> None:
    _, redirect, _ = sign_in(client)

    response = client.post(
        "/dev-idp/token",
        data={
            "grant_type": "authorization_code",
            "code": redirect["code"],
            "redirect_uri": REDIRECT_URI,
        },
        auth=(CLIENT_ID, CLIENT_SECRET),
    )

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_wrong_client_secret_is_refused_with_401(client: TestClient) -> None:
    _, redirect, verifier = sign_in(client)

    response = exchange(client, redirect["code"], verifier, auth=(CLIENT_ID, "wrong-secret"))

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert "access_token" not in response.json()


def test_token_redirect_uri_must_match_the_authorization_request(client: TestClient) -> None:
    _, redirect, verifier = sign_in(client)

    response = client.post(
        "/dev-idp/token",
        data={
            "grant_type": "authorization_code",
            "code": redirect["code"],
            "redirect_uri": "http://127.0.0.1:8000/elsewhere",
            "code_verifier": verifier,
        },
        auth=(CLIENT_ID, CLIENT_SECRET),
    )

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"redirect_uri": "http://127.0.0.1:8000/callback/evil"}, "not supported"),
        ({"redirect_uri": None}, "redirect_uri"),
        ({"client_id": "someone-else"}, "client"),
    ],
)
def test_unverifiable_client_gets_a_400_page_and_no_redirect(
    client: TestClient, overrides: dict[str, str | None], reason: str
) -> None:
    _, challenge = pkce_pair()

    page = client.get("/dev-idp/authorize", params=authorization_params(challenge, **overrides))

    assert page.status_code == 400
    assert "location" not in page.headers
    assert reason in page.text
    assert BANNER in page.text
    assert 'name="authorization_request"' not in page.text


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"code_challenge": None, "code_challenge_method": None}, "invalid_request"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge_method": None}, "invalid_request"),
        ({"scope": "email profile"}, "invalid_scope"),
        ({"response_type": "token"}, "unsupported_response_type"),
    ],
)
def test_invalid_request_from_a_known_client_is_redirected_with_an_error(
    client: TestClient, overrides: dict[str, str | None], error: str
) -> None:
    _, challenge = pkce_pair()
    params = authorization_params(challenge, **overrides)

    response = client.get("/dev-idp/authorize", params=params)

    assert response.status_code == 302
    assert response.headers["location"].startswith(REDIRECT_URI + "?")
    answer = query(response.headers["location"])
    assert answer["error"] == error
    assert answer["state"] == params["state"]
    assert answer["iss"] == ISSUER
    assert "code" not in answer


@pytest.mark.parametrize(
    ("name", "email"),
    [("", "ada@example.com"), ("   ", "ada@example.com"), ("Ada", ""), ("Ada", "not-an-email")],
)
def test_sign_in_form_refuses_empty_or_invalid_identity(
    client: TestClient, name: str, email: str
) -> None:
    _, challenge = pkce_pair()
    page = client.get("/dev-idp/authorize", params=authorization_params(challenge))

    answer = client.post(
        "/dev-idp/authorize",
        data={"authorization_request": hidden_request(page.text), "name": name, "email": email},
    )

    assert answer.status_code == 400
    assert "location" not in answer.headers
    assert 'role="alert"' in answer.text
    assert hidden_request(answer.text) == hidden_request(page.text)


def test_sign_in_post_revalidates_the_carried_authorization_request(
    client: TestClient,
) -> None:
    _, challenge = pkce_pair()
    page = client.get("/dev-idp/authorize", params=authorization_params(challenge))
    tampered = hidden_request(page.text).replace("callback%2Fdev", "callback%2Fevil")

    answer = client.post(
        "/dev-idp/authorize",
        data={"authorization_request": tampered, "name": "Ada", "email": "ada@example.com"},
    )

    assert answer.status_code == 400
    assert "location" not in answer.headers


def test_same_email_keeps_its_sub_across_sign_ins_and_restarts(client: TestClient) -> None:
    first = verified_claims(client, tokens_for(client, email="ada@example.com")["id_token"])
    second = verified_claims(client, tokens_for(client, email=" ADA@example.com ")["id_token"])
    with make_client() as restarted:
        third = verified_claims(
            restarted, tokens_for(restarted, email="ada@example.com")["id_token"]
        )

    assert first["sub"] == second["sub"] == third["sub"]


def test_different_emails_get_different_subs(client: TestClient) -> None:
    ada = verified_claims(client, tokens_for(client, email="ada@example.com")["id_token"])
    grace = verified_claims(client, tokens_for(client, email="grace@example.com")["id_token"])

    assert ada["sub"] != grace["sub"]


def test_logout_redirects_to_a_registered_uri_with_state(client: TestClient) -> None:
    id_token = tokens_for(client)["id_token"]

    response = client.get(
        "/dev-idp/logout",
        params={
            "id_token_hint": id_token,
            "post_logout_redirect_uri": POST_LOGOUT_URI,
            "state": "bye",
        },
    )

    assert response.status_code == 302
    assert response.headers["location"] == POST_LOGOUT_URI + "?state=bye"


def test_logout_with_client_id_only_redirects_to_a_registered_uri(client: TestClient) -> None:
    response = client.get(
        "/dev-idp/logout",
        params={"client_id": CLIENT_ID, "post_logout_redirect_uri": POST_LOGOUT_URI},
    )

    assert response.status_code == 302
    assert response.headers["location"] == POST_LOGOUT_URI


def test_logout_accepts_an_expired_id_token_hint(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    earlier = int(time.time()) - 3600
    monkeypatch.setattr(devidp, "_now", lambda: earlier)
    id_token = tokens_for(client)["id_token"]
    monkeypatch.undo()

    response = client.get(
        "/dev-idp/logout",
        params={"id_token_hint": id_token, "post_logout_redirect_uri": POST_LOGOUT_URI},
    )

    assert response.status_code == 302
    assert response.headers["location"] == POST_LOGOUT_URI


def test_logout_never_redirects_to_an_unregistered_uri(client: TestClient) -> None:
    id_token = tokens_for(client)["id_token"]

    response = client.get(
        "/dev-idp/logout",
        params={
            "id_token_hint": id_token,
            "client_id": CLIENT_ID,
            "post_logout_redirect_uri": "https://evil.example/",
        },
    )

    assert response.status_code == 200
    assert "location" not in response.headers
    assert "You are signed out" in response.text


def test_logout_refuses_an_id_token_hint_signed_by_another_key(client: TestClient) -> None:
    foreign_key = RSAKey.generate_key(2048, parameters={"alg": "RS256"}, private=True)
    forged = jwt.encode(
        {"alg": "RS256"}, {"iss": ISSUER, "aud": CLIENT_ID, "sub": "dev-x"}, foreign_key
    )

    response = client.get(
        "/dev-idp/logout",
        params={"id_token_hint": forged, "post_logout_redirect_uri": POST_LOGOUT_URI},
    )

    assert response.status_code == 400
    assert "location" not in response.headers


def test_logout_without_parameters_shows_the_signed_out_page(client: TestClient) -> None:
    response = client.get("/dev-idp/logout")

    assert response.status_code == 200
    assert "You are signed out" in response.text
    assert BANNER in response.text


def test_jwks_publishes_only_the_public_signing_key(client: TestClient) -> None:
    jwks = client.get("/dev-idp/jwks").json()

    assert len(jwks["keys"]) == 1
    key = jwks["keys"][0]
    assert key["kty"] == "RSA"
    assert key["use"] == "sig"
    assert key["alg"] == "RS256"
    assert key["kid"]
    assert not {"d", "p", "q", "dp", "dq", "qi", "oth"} & set(key)


def test_tokens_codes_and_secrets_never_reach_the_logs(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    _, redirect, verifier = sign_in(client)
    token = exchange(client, redirect["code"], verifier).json()

    logged = caplog.text
    for secret in (redirect["code"], verifier, CLIENT_SECRET, token["access_token"]):
        assert secret not in logged
    assert token["id_token"].split(".")[1] not in logged


def test_creation_warns_that_it_signs_in_anyone(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="bridge.devidp"):
        make_client()

    assert (
        f"development IdP enabled at {ISSUER}: it signs in anyone; never use it in production"
        in caplog.messages
    )


@pytest.mark.parametrize(
    "issuer", ["http://example.com/dev-idp", "http://10.0.0.5/dev-idp", f"{ISSUER}/"]
)
def test_refuses_an_issuer_that_is_not_a_loopback_url(issuer: str) -> None:
    with pytest.raises(ValueError, match="issuer"):
        create_dev_idp(
            issuer=issuer,
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            redirect_uris=[REDIRECT_URI],
            post_logout_redirect_uris=[POST_LOGOUT_URI],
            templates_dir=TEMPLATES_DIR,
        )
