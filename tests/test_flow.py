"""The whole sign-in, end to end in-process, for the keycloak, google and generic presets."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
from starlette.testclient import TestClient

from tests.conftest import PROJECT_ID, PUBLIC_URL, TILEDESK_SECRET, auth, login, start_login
from tests.idp import FakeIdP, s256

AUDIENCE = f"https://tiledesk.com/projects/{PROJECT_ID}"


def decode(token: str) -> dict[str, object]:
    assert token.startswith("JWT ")
    return jwt.decode(token[4:], TILEDESK_SECRET, algorithms=["HS256"], audience=AUDIENCE)


@pytest.mark.parametrize("provider", ["acme", "google", "generic"])
def test_full_flow_mints_a_tiledesk_token(
    client: TestClient, idps: dict[str, FakeIdP], provider: str
) -> None:
    response = login(client, idps[provider], provider)
    assert response.status_code == 303
    assert response.headers["location"] == f"{PUBLIC_URL}/"

    answer = auth(client)
    assert answer.status_code == 200
    body = answer.json()
    payload = decode(body["token"])
    assert payload["sub"] == "userexternal"
    assert payload["aud"] == AUDIENCE
    assert payload["_id"] == f"{PROJECT_ID}_{provider}_user-1"
    assert payload["firstname"] == "Ada"
    assert payload["lastname"] == "Lovelace"
    assert payload["email"] == "ada@acme.test"
    assert payload["exp"] - payload["iat"] == 8 * 3600
    assert body["expires_at"] == payload["exp"]
    assert "role" not in payload and "nbf" not in payload
    assert set(payload) == {
        "_id",
        "sub",
        "aud",
        "firstname",
        "lastname",
        "email",
        "attributes",
        "iat",
        "exp",
        "jti",
    }
    assert payload["attributes"]["idp"] == provider
    assert body["user"]["_id"] == payload["_id"]


def test_authorization_request_uses_pkce_s256_state_and_nonce(client: TestClient) -> None:
    location = start_login(client)
    query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    assert query["code_challenge_method"] == "S256"
    assert len(query["code_challenge"]) == 43
    assert len(query["state"]) >= 32 and len(query["nonce"]) >= 32
    assert query["redirect_uri"] == f"{PUBLIC_URL}/callback/acme"
    assert query["scope"].split() == ["openid", "email", "profile"]
    assert s256("x") != query["code_challenge"]


def test_each_login_gets_a_fresh_jti(client: TestClient, idp: FakeIdP) -> None:
    login(client, idp)
    first, second = decode(auth(client).json()["token"]), decode(auth(client).json()["token"])
    assert first["jti"] != second["jti"]


def test_same_user_in_two_browsers_gets_the_same_id(
    new_client: Callable[[], TestClient], idp: FakeIdP
) -> None:
    one, two, three = new_client(), new_client(), new_client()
    login(one, idp)
    login(two, idp)
    idp.user = {**idp.user, "sub": "user-2", "email": "grace@acme.test"}
    login(three, idp)
    id_one, id_two, id_three = (decode(auth(c).json()["token"])["_id"] for c in (one, two, three))
    assert id_one == id_two
    assert id_three != id_one
    assert one.cookies.get("bridge_session") != two.cookies.get("bridge_session")


def test_login_redirects_to_next_path_on_this_site(client: TestClient, idp: FakeIdP) -> None:
    response = login(client, idp, next_path="/help%3Ftopic%3Dbilling")
    assert response.headers["location"] == f"{PUBLIC_URL}/help?topic=billing"


def test_a_token_endpoint_with_a_query_gets_the_token_request_with_its_query(
    client: TestClient, idp: FakeIdP
) -> None:
    """Azure AD B2C names the user flow in its endpoints' query (``?p=``): kept as published."""
    idp.discovery_overrides["token_endpoint"] = f"{idp.base}/token?p=B2C_1_signin"
    assert login(client, idp).status_code == 303
    sent = idp.routes["token"].calls.last.request
    assert sent.url.params["p"] == "B2C_1_signin"
    assert str(sent.url) == f"{idp.base}/token?p=B2C_1_signin"
