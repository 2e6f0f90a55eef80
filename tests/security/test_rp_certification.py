"""The OpenID Foundation's RP certification cases for a code-flow RP (Basic and Config profiles).

Each test is named after the certification case it pins (``rp-id_token-aud`` ->
``test_rp_id_token_aud``); the fake IdP misbehaves the way the certification OP does.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import respx
from joserfc.jwk import ECKey
from starlette.testclient import TestClient

from tests.conftest import login, start_login
from tests.idp import (
    ATTACKER_KEY,
    EC_KEY,
    RSA_KEY,
    RSA_KEY_2,
    THIN_ID_TOKEN,
    FakeIdP,
    unsigned,
)
from tests.security import (
    assert_id_token_rejected,
    assert_no_session,
    assert_refused,
    assert_signed_in,
)

OTHER_EC_KEY = ECKey.generate_key("P-256", parameters={"kid": "ec-1", "use": "sig"}, private=True)


def _drop_kid(claims: dict[str, Any], header: dict[str, Any]) -> None:
    header.pop("kid", None)


# --- ID token claims ----------------------------------------------------------------------


def test_rp_id_token_issuer_mismatch(client: TestClient, idp: FakeIdP) -> None:
    idp.tamper = lambda claims, header: claims.update(iss="https://evil.test/realms/acme")
    assert_id_token_rejected(login(client, idp), client, idp)


def test_rp_id_token_sub(client: TestClient, idp: FakeIdP) -> None:
    idp.tamper = lambda claims, header: claims.pop("sub")
    assert_id_token_rejected(login(client, idp), client, idp)


def test_rp_id_token_aud(client: TestClient, idp: FakeIdP) -> None:
    idp.tamper = lambda claims, header: claims.update(aud="another-client")
    assert_id_token_rejected(login(client, idp), client, idp)


def test_rp_id_token_aud_missing(client: TestClient, idp: FakeIdP) -> None:
    idp.tamper = lambda claims, header: claims.pop("aud")
    assert_id_token_rejected(login(client, idp), client, idp)


def test_rp_id_token_iat(client: TestClient, idp: FakeIdP) -> None:
    idp.tamper = lambda claims, header: claims.pop("iat")
    assert_id_token_rejected(login(client, idp), client, idp)


def test_rp_id_token_exp_missing(client: TestClient, idp: FakeIdP) -> None:
    idp.tamper = lambda claims, header: claims.pop("exp")
    assert_id_token_rejected(login(client, idp), client, idp)


def test_rp_nonce_invalid(client: TestClient, idp: FakeIdP) -> None:
    idp.tamper = lambda claims, header: claims.update(nonce="not-the-nonce-we-sent")
    assert_id_token_rejected(login(client, idp), client, idp)


def test_rp_nonce_missing(client: TestClient, idp: FakeIdP) -> None:
    """The bridge always sends a nonce, so an ID token without one is refused."""
    idp.tamper = lambda claims, header: claims.pop("nonce")
    assert_id_token_rejected(login(client, idp), client, idp)


def test_rp_userinfo_bad_sub_claim(client: TestClient, idp: FakeIdP) -> None:
    """``userinfo = "auto"``: the certification OP's ID token has no profile claim to map."""
    idp.userinfo_only = THIN_ID_TOKEN
    idp.userinfo_overrides = {"sub": "someone-else"}
    response = login(client, idp)
    assert_refused(response, 401, "id_token_invalid")
    assert_no_session(client)
    assert idp.routes["userinfo"].call_count == 1


def test_rp_userinfo_bad_sub_claim_with_userinfo_always_asked(
    settings_data: dict[str, Any], request: pytest.FixtureRequest, idp: FakeIdP
) -> None:
    """``userinfo = true`` asks it even when the ID token holds every claim, and checks it."""
    settings_data["providers"]["acme"]["userinfo"] = True
    client: TestClient = request.getfixturevalue("client")
    idp.userinfo_only = ()
    idp.userinfo_overrides = {"sub": "someone-else"}
    response = login(client, idp)
    assert_refused(response, 401, "id_token_invalid")
    assert_no_session(client)
    assert idp.routes["userinfo"].call_count == 1


# --- signatures and keys ------------------------------------------------------------------


def test_rp_id_token_sig_rs256(client: TestClient, idp: FakeIdP) -> None:
    body = assert_signed_in(login(client, idp), client)
    assert body["user"]["_id"].endswith("_acme_user-1")


def test_rp_id_token_bad_sig_rs256(client: TestClient, idp: FakeIdP) -> None:
    idp.signing_key = ATTACKER_KEY  # same kid "rsa-1", another key
    assert_id_token_rejected(login(client, idp), client, idp)
    assert idp.routes["jwks"].call_count <= 2, "at most the initial fetch and one refetch"


def test_rp_id_token_sig_es256(client: TestClient, idp: FakeIdP) -> None:
    idp.signing_key, idp.alg = EC_KEY, "ES256"
    assert_signed_in(login(client, idp), client)


def test_rp_id_token_bad_sig_es256(client: TestClient, idp: FakeIdP) -> None:
    idp.signing_key, idp.alg = OTHER_EC_KEY, "ES256"
    assert_id_token_rejected(login(client, idp), client, idp)


def test_rp_id_token_sig_none(client: TestClient, idp: FakeIdP) -> None:
    idp.forge = unsigned
    assert_id_token_rejected(login(client, idp), client, idp)


def test_rp_id_token_sig_none_even_when_the_idp_advertises_it(
    client: TestClient, idp: FakeIdP
) -> None:
    idp.discovery_overrides["id_token_signing_alg_values_supported"] = ["none", "RS256"]
    idp.forge = unsigned
    assert_id_token_rejected(login(client, idp), client, idp)


def test_rp_id_token_kid_absent_single_jwks(client: TestClient, idp: FakeIdP) -> None:
    idp.published_keys = [RSA_KEY]
    idp.tamper = _drop_kid
    assert_signed_in(login(client, idp), client)


def test_rp_id_token_kid_absent_multiple_jwks(client: TestClient, idp: FakeIdP) -> None:
    """No kid and several keys: the bridge tries each key of the right type."""
    idp.published_keys = [RSA_KEY, EC_KEY, RSA_KEY_2]
    idp.signing_key = RSA_KEY_2
    idp.tamper = _drop_kid
    assert_signed_in(login(client, idp), client)
    assert idp.routes["jwks"].call_count == 1, "found among the cached keys, no refetch"


def test_rp_id_token_kid_absent_multiple_jwks_none_verifies(
    client: TestClient, idp: FakeIdP
) -> None:
    idp.published_keys = [RSA_KEY, EC_KEY, RSA_KEY_2]
    idp.signing_key = ATTACKER_KEY
    idp.tamper = _drop_kid
    assert_id_token_rejected(login(client, idp), client, idp)


def test_rp_key_rotation_op_sign_key(client: TestClient, idp: FakeIdP) -> None:
    """The IdP rotates to a key with a new kid: one JWKS refetch, and the login works."""
    assert_signed_in(login(client, idp), client)
    assert idp.routes["jwks"].call_count == 1
    idp.signing_key, idp.published_keys = RSA_KEY_2, [RSA_KEY_2]
    assert_signed_in(login(client, idp), client)
    assert idp.routes["jwks"].call_count == 2


def test_rp_key_rotation_op_sign_key_native(client: TestClient, idp: FakeIdP) -> None:
    """Rotation without a kid hint: the cached key fails, the JWKS is refetched once."""
    idp.published_keys, idp.tamper = [RSA_KEY], _drop_kid
    assert_signed_in(login(client, idp), client)
    idp.signing_key, idp.published_keys = RSA_KEY_2, [RSA_KEY_2]
    assert_signed_in(login(client, idp), client)
    assert idp.routes["jwks"].call_count == 2


# --- discovery ----------------------------------------------------------------------------


def test_rp_discovery_issuer_not_matching_config(client: TestClient, idp: FakeIdP) -> None:
    idp.discovery_overrides["issuer"] = "https://evil.test/realms/acme"
    response = client.get("/login/acme")
    assert_refused(response, 502, "idp_error")
    assert idp.routes["token"].called is False
    assert_no_session(client)
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["providers"]["acme"]["ready"] is False


def test_rp_discovery_jwks_uri_keys(
    client: TestClient, idp: FakeIdP, mock_idp: respx.MockRouter
) -> None:
    """Keys come from the discovered jwks_uri, wherever it points."""
    certs = f"{idp.base}/protocol/openid-connect/certs"
    idp.discovery_overrides["jwks_uri"] = certs
    route = mock_idp.get(certs).mock(side_effect=lambda r: httpx.Response(200, json=idp.jwks()))
    idp.faults["jwks"] = httpx.Response(200, json={"keys": [ATTACKER_KEY.as_dict(private=False)]})
    assert_signed_in(login(client, idp), client)
    assert route.call_count == 1
    assert idp.routes["jwks"].called is False


def test_rp_discovery_jwks_uri_keys_only_from_jwks_uri(
    client: TestClient, idp: FakeIdP, mock_idp: respx.MockRouter
) -> None:
    """A token signed by a key the discovered jwks_uri does not publish is refused."""
    certs = f"{idp.base}/protocol/openid-connect/certs"
    idp.discovery_overrides["jwks_uri"] = certs
    mock_idp.get(certs).mock(side_effect=lambda r: httpx.Response(200, json=idp.jwks()))
    idp.signing_key = ATTACKER_KEY
    assert_id_token_rejected(login(client, idp), client, idp)


def test_rp_discovery_is_used_for_the_authorization_endpoint(
    client: TestClient, idp: FakeIdP
) -> None:
    location = start_login(client)
    assert location.startswith(f"{idp.base}/authorize?")
