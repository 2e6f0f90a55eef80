"""The Tiledesk token: exactly the claims Tiledesk reads, signed HS256 with the project secret."""

from __future__ import annotations

import base64
import re
import subprocess
import sys
import textwrap

import jwt
import pytest

from bridge.identity import TiledeskUser
from bridge.tiledesk import build_payload, mint, refuse_forbidden_claims

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
    # 128 random bits, base64url without padding: unique per token, and short.
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", payload["jti"])
    assert len(base64.urlsafe_b64decode(payload["jti"] + "==")) == 16


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


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_a_payload_that_is_not_strict_json_is_never_signed(value: float) -> None:
    """Tiledesk parses the token with JSON.parse: ``NaN`` would make it unreadable."""
    user = TiledeskUser(id=f"{PROJECT}_acme_x", attributes={"score": value})
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        mint(user, project_id=PROJECT, secret=SECRET, ttl=60)


@pytest.mark.parametrize("claim", ["role", "nbf"])
def test_a_payload_with_a_forbidden_claim_is_refused(claim: str) -> None:
    payload = build_payload(USER, project_id=PROJECT, ttl=60, now=0)
    with pytest.raises(ValueError, match=f"would carry {claim}, which the bridge never emits"):
        refuse_forbidden_claims({**payload, claim: "owner"})


def test_the_forbidden_claim_check_still_runs_under_python_O() -> None:
    """``python -O`` strips asserts; the gate must survive it. Widened to ``jti`` so it fires."""
    code = textwrap.dedent(
        """
        from bridge import tiledesk
        from bridge.identity import TiledeskUser
        tiledesk.FORBIDDEN_CLAIMS = frozenset({"jti"})
        try:
            tiledesk.build_payload(TiledeskUser(id="p_acme_x"), project_id="p", ttl=60, now=0)
        except ValueError as exc:
            print("refused:", exc)
        """
    )
    result = subprocess.run(
        [sys.executable, "-O", "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout == (
        "refused: the Tiledesk payload would carry jti, which the bridge never emits\n"
    )


def test_the_prepared_signer_makes_the_same_token_as_pyjwt() -> None:
    """The key and header are prepared once; the token is byte for byte ``jwt.encode``'s."""
    minted = mint(USER, project_id=PROJECT, secret=SECRET, ttl=28800, now=1767225600)
    assert minted.token == "JWT " + jwt.encode(minted.payload, SECRET, algorithm="HS256")
