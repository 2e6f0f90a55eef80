"""/healthz says the process serves; /readyz says whether every provider can sign people in."""

from __future__ import annotations

import httpx
from starlette.testclient import TestClient

from bridge.oidc import RETRY_AFTER_FAILURE
from tests.clock import FakeClock, install
from tests.idp import FakeIdP


def test_healthz_answers_while_the_process_serves(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert client.head("/healthz").status_code == 200


def test_healthz_does_not_call_any_idp(client: TestClient, idps: dict[str, FakeIdP]) -> None:
    client.get("/healthz")
    assert not any(route.called for idp in idps.values() for route in idp.routes.values())


def test_readyz_reports_each_provider_when_ready(client: TestClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["status"] == "ready"
    assert set(body["providers"]) == {"acme", "google", "generic"}
    assert body["providers"]["acme"] == {
        "ready": True,
        "detail": "ready",
        "issuer": "https://sso.acme.test/realms/acme",
        "keys": 2,
    }


def test_readyz_names_the_failing_provider(client: TestClient, idps: dict[str, FakeIdP]) -> None:
    idps["generic"].routes["discovery"].mock(side_effect=None, return_value=httpx.Response(500))
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not_ready"
    assert body["providers"]["acme"]["ready"] is True
    assert body["providers"]["generic"] == {
        "ready": False,
        "detail": "generic: the discovery endpoint "
        "https://idp.example.test/.well-known/openid-configuration answered HTTP 500",
    }


def test_readyz_reports_an_issuer_mismatch(client: TestClient, idps: dict[str, FakeIdP]) -> None:
    idps["acme"].discovery_overrides["issuer"] = "https://other.test"
    body = client.get("/readyz").json()
    assert body["providers"]["acme"]["ready"] is False
    assert "'https://other.test'" in body["providers"]["acme"]["detail"]


def test_readyz_fails_while_keys_cannot_load(client: TestClient, idps: dict[str, FakeIdP]) -> None:
    idps["google"].routes["jwks"].mock(side_effect=httpx.ConnectError("down"))
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["providers"]["google"] == {
        "ready": False,
        "detail": "google: could not reach the jwks endpoint https://accounts.google.com/jwks: "
        "ConnectError (down)",
    }


def test_readyz_recovers_once_the_idp_is_back(client: TestClient, idps: dict[str, FakeIdP]) -> None:
    clock = install(client, FakeClock())
    idps["acme"].routes["jwks"].mock(side_effect=httpx.ConnectError("down"))
    assert client.get("/readyz").status_code == 503
    idps["acme"].routes["jwks"].mock(
        side_effect=lambda r: httpx.Response(200, json=idps["acme"].jwks())
    )
    clock.advance(RETRY_AFTER_FAILURE)  # a failed load is retried after the back-off
    assert client.get("/readyz").status_code == 200
