"""The Tiledesk token: exactly the claims Tiledesk reads, signed HS256 with the project secret."""

from __future__ import annotations

import jwt
import pytest

from bridge.identity import TiledeskUser
from bridge.tiledesk import build_payload, mint

PROJECT = "64f0c0ffee00000000000001"
SECRET = "0b1c6c52-41f7-4a8f-9d50-6a3c2f1a7e11"
AUDIENCE = f"https://tiledesk.com/projects/{PROJECT}"
USER = TiledeskUser(
    id=f"{PROJECT}_acme_5f2c9a",
    firstname="Ada",
    lastname="Lovelace",
    email="ada@example.com",
    attributes={"idp": "acme"},
)


def test_minted_token_matches_tiledesk_reference_payload() -> None:
    minted = mint(USER, project_id=PROJECT, secret=SECRET, ttl=28800, now=1767225600)
    assert minted.token.startswith("JWT ")
    header = jwt.get_unverified_header(minted.token[4:])
    assert header["alg"] == "HS256"
    payload = jwt.decode(
        minted.token[4:],
        SECRET,
        algorithms=["HS256"],
        audience=AUDIENCE,
        options={"verify_exp": False},
    )
    assert payload == {
        "_id": f"{PROJECT}_acme_5f2c9a",
        "sub": "userexternal",
        "aud": AUDIENCE,
        "firstname": "Ada",
        "lastname": "Lovelace",
        "email": "ada@example.com",
        "attributes": {"idp": "acme"},
        "iat": 1767225600,
        "exp": 1767254400,
        "jti": payload["jti"],
    }
    assert minted.expires_at == 1767254400
    assert len(payload["jti"]) == 36


def test_token_does_not_verify_with_another_secret() -> None:
    minted = mint(USER, project_id=PROJECT, secret=SECRET, ttl=60)
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(
            minted.token[4:],
            "another-secret-of-enough-length-000",
            algorithms=["HS256"],
            audience=AUDIENCE,
        )


def test_empty_optional_fields_are_left_out_and_nothing_forbidden_appears() -> None:
    payload = build_payload(TiledeskUser(id=f"{PROJECT}_acme_x"), project_id=PROJECT, ttl=60, now=0)
    assert set(payload) == {"_id", "sub", "aud", "attributes", "iat", "exp", "jti"}
    assert "role" not in payload and "nbf" not in payload


def test_attributes_cannot_smuggle_top_level_claims() -> None:
    user = TiledeskUser(
        id=f"{PROJECT}_acme_x", attributes={"role": "owner", "sub": "x", "aud": "y"}
    )
    payload = build_payload(user, project_id=PROJECT, ttl=60, now=0)
    assert "role" not in payload
    assert payload["sub"] == "userexternal"
    assert payload["aud"] == AUDIENCE
    assert payload["attributes"]["role"] == "owner"
