"""Attacks the certification suite does not run: algorithm confusion, foreign key sources,
``crit``, ``azp``, clock games, and RFC 9207 mix-up defence."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from starlette.testclient import TestClient

from tests.conftest import ISSUERS, login, start_login
from tests.idp import ATTACKER_KEY, RSA_KEY, FakeIdP, raw_sign
from tests.security import (
    assert_id_token_rejected,
    assert_no_session,
    assert_refused,
    assert_signed_in,
)

LEEWAY = 60  # the provider's default leeway


def _rsa_public_pem() -> bytes:
    return RSA_KEY.public_key.public_bytes(  # type: ignore[no-any-return]
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _hs256(secret: bytes | str) -> Callable[[dict[str, Any], dict[str, Any]], str]:
    """HS256 by hand: joserfc rightly refuses to import a PEM public key as an HMAC secret."""
    key = secret if isinstance(secret, bytes) else secret.encode()

    def forge(claims: dict[str, Any], header: dict[str, Any]) -> str:
        def part(data: bytes) -> bytes:
            return base64.urlsafe_b64encode(data).rstrip(b"=")

        head = {**header, "alg": "HS256"}
        signing_input = part(json.dumps(head).encode()) + b"." + part(json.dumps(claims).encode())
        mac = hmac.new(key, signing_input, hashlib.sha256).digest()
        return (signing_input + b"." + part(mac)).decode()

    return forge


# --- algorithm confusion ------------------------------------------------------------------


def test_hs256_keyed_with_the_idps_public_rsa_key_is_refused(
    client: TestClient, idp: FakeIdP
) -> None:
    idp.forge = _hs256(_rsa_public_pem())
    assert_id_token_rejected(login(client, idp), client, idp)


def test_hs256_keyed_with_the_public_rsa_jwk_modulus_is_refused(
    client: TestClient, idp: FakeIdP
) -> None:
    idp.forge = _hs256(str(RSA_KEY.as_dict(private=False)["n"]))
    assert_id_token_rejected(login(client, idp), client, idp)


def test_hs256_keyed_with_the_client_secret_is_refused(client: TestClient, idp: FakeIdP) -> None:
    """The IdP advertises only RS256/ES256: a client-secret MAC is not an option."""
    idp.forge = _hs256(idp.client_secret)
    assert_id_token_rejected(login(client, idp), client, idp)


def test_hs256_is_refused_even_when_the_idp_advertises_it(client: TestClient, idp: FakeIdP) -> None:
    idp.discovery_overrides["id_token_signing_alg_values_supported"] = ["HS256", "RS256"]
    idp.forge = _hs256(idp.client_secret)
    assert_id_token_rejected(login(client, idp), client, idp)


def test_alg_not_advertised_by_the_idp_is_refused(client: TestClient, idp: FakeIdP) -> None:
    """PS256 with the real key: a valid signature, but not an algorithm the IdP announced."""
    idp.alg = "PS256"
    assert_id_token_rejected(login(client, idp), client, idp)


def test_rs256_header_on_an_ec_signature_is_refused(client: TestClient, idp: FakeIdP) -> None:
    idp.tamper = lambda claims, header: header.update(kid="ec-1")
    assert_id_token_rejected(login(client, idp), client, idp)


# --- header parameters naming their own key -----------------------------------------------


@pytest.mark.parametrize(
    "extra",
    [
        {"jku": "https://evil.test/jwks.json"},
        {"x5u": "https://evil.test/cert.pem"},
        {"jwk": ATTACKER_KEY.as_dict(private=False)},
    ],
    ids=["jku", "x5u", "jwk"],
)
def test_id_token_header_naming_its_own_key_source_is_refused(
    client: TestClient, idp: FakeIdP, extra: dict[str, Any]
) -> None:
    idp.signing_key = ATTACKER_KEY
    idp.forge = lambda claims, header: raw_sign(claims, {**header, **extra}, ATTACKER_KEY)
    assert_id_token_rejected(login(client, idp), client, idp)


def test_id_token_header_with_foreign_key_source_is_refused_even_with_a_good_signature(
    client: TestClient, idp: FakeIdP
) -> None:
    idp.forge = lambda claims, header: raw_sign(
        claims, {**header, "jku": "https://evil.test/jwks.json"}, RSA_KEY
    )
    assert_id_token_rejected(login(client, idp), client, idp)


def test_unknown_crit_header_is_refused(client: TestClient, idp: FakeIdP) -> None:
    idp.forge = lambda claims, header: raw_sign(
        claims, {**header, "crit": ["urn:evil:ignore-me"], "urn:evil:ignore-me": True}, RSA_KEY
    )
    assert_id_token_rejected(login(client, idp), client, idp)


# --- audience and azp ---------------------------------------------------------------------


def test_multiple_audiences_without_azp_are_refused(client: TestClient, idp: FakeIdP) -> None:
    idp.tamper = lambda claims, header: claims.update(aud=[idp.client_id, "another-client"])
    assert_id_token_rejected(login(client, idp), client, idp)


def test_multiple_audiences_with_a_wrong_azp_are_refused(client: TestClient, idp: FakeIdP) -> None:
    idp.tamper = lambda claims, header: claims.update(
        aud=[idp.client_id, "another-client"], azp="another-client"
    )
    assert_id_token_rejected(login(client, idp), client, idp)


def test_multiple_audiences_with_our_azp_are_accepted(client: TestClient, idp: FakeIdP) -> None:
    idp.tamper = lambda claims, header: claims.update(
        aud=[idp.client_id, "another-client"], azp=idp.client_id
    )
    assert_signed_in(login(client, idp), client)


def test_audience_list_without_us_is_refused(client: TestClient, idp: FakeIdP) -> None:
    idp.tamper = lambda claims, header: claims.update(aud=["a", "b"], azp=idp.client_id)
    assert_id_token_rejected(login(client, idp), client, idp)


# --- time ---------------------------------------------------------------------------------


def _times(iat: int, exp: int) -> Callable[[dict[str, Any], dict[str, Any]], None]:
    def tamper(claims: dict[str, Any], header: dict[str, Any]) -> None:
        now = int(time.time())
        claims.update(iat=now + iat, exp=now + exp, auth_time=now + iat)

    return tamper


def test_iat_far_in_the_future_is_refused(client: TestClient, idp: FakeIdP) -> None:
    idp.tamper = _times(iat=3600, exp=7200)
    assert_id_token_rejected(login(client, idp), client, idp)


def test_iat_just_ahead_within_the_leeway_is_accepted(client: TestClient, idp: FakeIdP) -> None:
    idp.tamper = _times(iat=LEEWAY - 20, exp=600)
    assert_signed_in(login(client, idp), client)


def test_expired_token_just_inside_the_leeway_is_accepted(client: TestClient, idp: FakeIdP) -> None:
    idp.tamper = _times(iat=-600, exp=-(LEEWAY - 20))
    assert_signed_in(login(client, idp), client)


def test_expired_token_just_outside_the_leeway_is_refused(client: TestClient, idp: FakeIdP) -> None:
    idp.tamper = _times(iat=-600, exp=-(LEEWAY + 20))
    assert_id_token_rejected(login(client, idp), client, idp)


def test_expired_token_outside_a_configured_leeway_is_refused(
    settings_data: dict[str, Any], request: pytest.FixtureRequest, idp: FakeIdP
) -> None:
    settings_data["providers"]["acme"]["leeway"] = 5
    client: TestClient = request.getfixturevalue("client")
    idp.tamper = _times(iat=-600, exp=-25)
    assert_id_token_rejected(login(client, idp), client, idp)


def test_nbf_in_the_future_is_refused(client: TestClient, idp: FakeIdP) -> None:
    idp.tamper = lambda claims, header: claims.update(nbf=int(time.time()) + 3600)
    assert_id_token_rejected(login(client, idp), client, idp)


def test_at_hash_not_matching_the_access_token_is_refused(client: TestClient, idp: FakeIdP) -> None:
    """OIDC Core 3.1.3.8: an ID token bound to another access token (token substitution)."""
    idp.tamper = lambda claims, header: claims.update(at_hash="AAAAAAAAAAAAAAAAAAAAAA")
    assert_id_token_rejected(login(client, idp), client, idp)


@pytest.mark.parametrize("value", ["4102444800", None, [4102444800], {"at": 4102444800}], ids=str)
def test_non_numeric_exp_is_refused(client: TestClient, idp: FakeIdP, value: object) -> None:
    idp.tamper = lambda claims, header: claims.update(exp=value)
    assert_id_token_rejected(login(client, idp), client, idp)


# --- RFC 9207: the iss parameter of the authorization response ----------------------------


def _advertise_iss(idp: FakeIdP) -> None:
    idp.discovery_overrides["authorization_response_iss_parameter_supported"] = True


def test_rfc9207_iss_in_the_authorization_response_is_accepted(
    client: TestClient, idp: FakeIdP
) -> None:
    _advertise_iss(idp)
    assert_signed_in(login(client, idp, iss=idp.issuer), client)


def test_rfc9207_missing_iss_is_refused_when_advertised(client: TestClient, idp: FakeIdP) -> None:
    _advertise_iss(idp)
    response = login(client, idp)
    assert_refused(response, 401, "id_token_invalid")
    assert_no_session(client)
    assert idp.routes["token"].called is False, "the code is never redeemed"


def test_rfc9207_iss_of_another_provider_is_refused(
    client: TestClient, idps: dict[str, FakeIdP]
) -> None:
    idp = idps["acme"]
    _advertise_iss(idp)
    response = login(client, idp, iss=ISSUERS["generic"])
    assert_refused(response, 401, "id_token_invalid")
    assert_no_session(client)
    assert idp.routes["token"].called is False


def test_rfc9207_wrong_iss_is_refused_even_when_not_advertised(
    client: TestClient, idp: FakeIdP
) -> None:
    response = login(client, idp, iss="https://evil.test")
    assert_refused(response, 401, "id_token_invalid")
    assert idp.routes["token"].called is False


def test_mix_up_flow_started_at_a_completed_at_b_is_refused(
    client: TestClient, idps: dict[str, FakeIdP]
) -> None:
    code, state = idps["acme"].authorize(start_login(client, "acme"))
    response = client.get("/callback/generic", params={"code": code, "state": state})
    assert_refused(response, 400, "state_mismatch")
    assert_no_session(client)
    assert idps["acme"].routes["token"].called is False
    assert idps["generic"].routes["token"].called is False
    # The spent state cannot be used at the right provider afterwards either.
    again = client.get("/callback/acme", params={"code": code, "state": state})
    assert_refused(again, 400, "state_mismatch")
