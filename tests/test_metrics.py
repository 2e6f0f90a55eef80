"""/metrics: logins, /auth calls, IdP latency, JWKS refreshes and errors, with bounded labels."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from bridge.metrics import OTHER, bounded_code
from tests.conftest import auth, login, start_login
from tests.idp import FakeIdP


def scrape(client: TestClient) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_a_login_is_counted_with_idp_latency_and_key_loads(
    client: TestClient, idp: FakeIdP
) -> None:
    idp.userinfo_only = ("family_name",)  # so that userinfo is asked, and timed
    login(client, idp)
    auth(client)
    samples = scrape(client)
    assert value(samples, "bridge_logins_total", provider="acme", outcome="ok") == 1
    assert value(samples, "bridge_auth_requests_total", outcome="ok") == 1
    for endpoint in ("discovery", "jwks", "token", "userinfo"):
        assert (
            value(samples, "bridge_idp_request_seconds_count", provider="acme", endpoint=endpoint)
            == 1
        ), endpoint
    assert value(samples, "bridge_jwks_refreshes_total", provider="acme", reason="initial") == 1


def test_failures_are_counted_by_code(client: TestClient, idp: FakeIdP) -> None:
    start_login(client)
    client.get("/callback/acme", params={"state": "forged", "code": "x"})
    idp.client_secret = "rotated-at-the-idp-0123456789"
    login(client, idp)
    client.post("/auth")
    samples = scrape(client)
    assert value(samples, "bridge_logins_total", provider="acme", outcome="state_mismatch") == 1
    assert value(samples, "bridge_logins_total", provider="acme", outcome="idp_error") == 1
    assert value(samples, "bridge_errors_total", code="state_mismatch") == 1
    assert value(samples, "bridge_errors_total", code="idp_error") == 1
    assert value(samples, "bridge_auth_requests_total", outcome="not_signed_in") == 1


def test_access_denied_and_idp_denial_are_counted(client: TestClient, idp: FakeIdP) -> None:
    idp.user = {**idp.user, "email_verified": False}
    login(client, idp)
    _, state = idp.authorize(start_login(client))
    client.get("/callback/acme", params={"state": state, "error": "access_denied"})
    samples = scrape(client)
    assert value(samples, "bridge_logins_total", provider="acme", outcome="access_denied") == 2


def test_unknown_provider_and_raw_paths_create_no_label(client: TestClient, idp: FakeIdP) -> None:
    client.get("/callback/evil-provider-123", params={"code": "c", "state": "s"})
    client.get("/login/evil-provider-456")
    client.get("/no/such/page-789")
    text = client.get("/metrics").text
    for needle in ("evil-provider", "page-789", "no/such"):
        assert needle not in text
    samples = scrape(client)
    assert value(samples, "bridge_errors_total", code="not_found") == 3
    providers = {
        dict(labels).get("provider")
        for (name, labels) in samples
        if name.startswith("bridge_logins_total")
    }
    assert providers <= {"acme", "google", "generic", None}


def test_idp_chosen_error_names_fold_into_other(client: TestClient, idp: FakeIdP) -> None:
    for i in range(3):
        _, state = idp.authorize(start_login(client))
        client.get("/callback/acme", params={"state": state, "error": f"made_up_{i}"})
    text = client.get("/metrics").text
    assert "made_up" not in text
    samples = scrape(client)
    assert value(samples, "bridge_logins_total", provider="acme", outcome=OTHER) == 3
    assert value(samples, "bridge_errors_total", code=OTHER) == 3


def test_no_user_data_in_metrics(client: TestClient, idp: FakeIdP) -> None:
    login(client, idp)
    text = client.get("/metrics").text
    for needle in ("user-1", "ada@acme.test", "Lovelace"):
        assert needle not in text


def test_bounded_code_keeps_known_codes() -> None:
    for code in ("ok", "idp_error", "idp_timeout", "access_denied", "login_required", "not_found"):
        assert bounded_code(code) == code
    assert bounded_code("x" * 64) == OTHER
