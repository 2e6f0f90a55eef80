"""Keys and metadata over time: cached, refetched under a rate limit, kept while the IdP is down."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from joserfc.jwk import RSAKey
from starlette.testclient import TestClient

from bridge.oidc import JWKS_REFETCH_INTERVAL, JWKS_TTL, METADATA_TTL, RETRY_AFTER_FAILURE
from bridge.settings import Settings
from bridge.web import Bridge
from tests.clock import FakeClock, install
from tests.conftest import login
from tests.idp import ATTACKER_KEY, EC_KEY, RSA_KEY, RSA_KEY_2, FakeIdP, hmac_key, sign
from tests.security import (
    app_client,
    assert_id_token_rejected,
    assert_refused,
    assert_signed_in,
)
from tests.test_metrics import scrape, value

REFRESHES = "bridge_jwks_refreshes_total"


def _unknown_kid(claims: dict[str, Any], header: dict[str, Any]) -> str:
    return sign(claims, {**header, "kid": "nobody-knows-me"}, ATTACKER_KEY)


def _rsa_key_with_kid(kid: str) -> RSAKey:
    """Another RSA key published under an existing kid (a key replaced in place)."""
    return RSAKey.import_key({**RSA_KEY_2.as_dict(private=True), "kid": kid, "use": "sig"})


def _jwks(*entries: dict[str, Any]) -> httpx.Response:
    return httpx.Response(200, json={"keys": list(entries)})


# --- caching and refetching ---------------------------------------------------------------


def test_jwks_and_discovery_are_cached_across_logins(client: TestClient, idp: FakeIdP) -> None:
    assert_signed_in(login(client, idp), client)
    assert_signed_in(login(client, idp), client)
    assert idp.routes["jwks"].call_count == 1
    assert idp.routes["discovery"].call_count == 1


def test_unknown_kid_causes_one_refetch_then_refusal(client: TestClient, idp: FakeIdP) -> None:
    idp.forge = _unknown_kid
    assert_id_token_rejected(login(client, idp), client, idp)
    assert idp.routes["jwks"].call_count == 2


def test_flood_of_unknown_kid_tokens_refetches_once(client: TestClient, idp: FakeIdP) -> None:
    idp.forge = _unknown_kid
    for _ in range(20):
        assert_refused(login(client, idp), 401, "id_token_invalid")
    assert idp.routes["jwks"].call_count == 2, "the initial fetch and one refetch"
    idp.forge = None
    assert_signed_in(login(client, idp), client)
    assert idp.routes["jwks"].call_count == 2


def test_refetch_is_allowed_again_after_the_interval(
    client: TestClient, idp: FakeIdP, clock: FakeClock
) -> None:
    idp.forge = _unknown_kid
    for _ in range(3):
        assert_refused(login(client, idp), 401, "id_token_invalid")
        clock.advance(JWKS_REFETCH_INTERVAL)
    assert idp.routes["jwks"].call_count == 4


def test_key_replaced_under_the_same_kid_is_found_by_one_refetch(
    client: TestClient, idp: FakeIdP
) -> None:
    assert_signed_in(login(client, idp), client)
    replacement = _rsa_key_with_kid("rsa-1")
    idp.signing_key, idp.published_keys = replacement, [replacement]
    assert_signed_in(login(client, idp), client)
    assert idp.routes["jwks"].call_count == 2


def test_jwks_refreshes_after_its_ttl(client: TestClient, idp: FakeIdP, clock: FakeClock) -> None:
    assert_signed_in(login(client, idp), client)
    clock.advance(JWKS_TTL)
    assert_signed_in(login(client, idp), client)
    assert idp.routes["jwks"].call_count == 2


@pytest.mark.parametrize(
    "fault",
    [httpx.Response(500, text="oops"), httpx.ReadTimeout, httpx.Response(200, text="<html>")],
    ids=["http-500", "timeout", "garbage"],
)
def test_cached_keys_keep_logins_working_while_the_jwks_endpoint_fails(
    client: TestClient, idp: FakeIdP, clock: FakeClock, fault: Any
) -> None:
    assert_signed_in(login(client, idp), client)
    clock.advance(JWKS_TTL)
    idp.faults["jwks"] = fault
    assert_signed_in(login(client, idp), client)
    assert idp.routes["jwks"].call_count == 2, "the refresh was tried, and failed"


def test_failing_jwks_refresh_is_not_retried_on_every_login(
    client: TestClient, idp: FakeIdP, clock: FakeClock
) -> None:
    """During a JWKS outage the cached keys serve at once, not after a call to a dead endpoint."""
    assert_signed_in(login(client, idp), client)
    clock.advance(JWKS_TTL)
    idp.faults["jwks"] = httpx.Response(500)
    for _ in range(5):
        assert_signed_in(login(client, idp), client)
    assert idp.routes["jwks"].call_count == 2
    clock.advance(RETRY_AFTER_FAILURE)
    idp.faults.clear()
    assert_signed_in(login(client, idp), client)
    assert idp.routes["jwks"].call_count == 3, "retried once after the back-off, and refreshed"
    assert_signed_in(login(client, idp), client)
    assert idp.routes["jwks"].call_count == 3


def test_cached_discovery_keeps_logins_working_while_discovery_fails(
    client: TestClient, idp: FakeIdP, clock: FakeClock
) -> None:
    assert_signed_in(login(client, idp), client)
    clock.advance(METADATA_TTL)
    idp.faults["discovery"] = httpx.Response(503)
    assert_signed_in(login(client, idp), client)
    assert idp.routes["discovery"].call_count == 2, "the first load and one failed refresh"


def test_refreshed_discovery_with_another_issuer_is_not_adopted(
    client: TestClient, idp: FakeIdP, clock: FakeClock
) -> None:
    assert_signed_in(login(client, idp), client)
    clock.advance(METADATA_TTL)
    idp.discovery_overrides.update(
        issuer="https://evil.test", authorization_endpoint="https://evil.test/authorize"
    )
    location = client.get("/login/acme").headers["location"]
    assert location.startswith(f"{idp.base}/authorize?")


# --- what the JWKS may hold ---------------------------------------------------------------


def test_symmetric_key_in_the_jwks_is_never_used(client: TestClient, idp: FakeIdP) -> None:
    oct_key = hmac_key("shared-with-everyone")
    idp.faults["jwks"] = _jwks(
        RSA_KEY.as_dict(private=False), {**oct_key.as_dict(), "kid": "hs", "use": "sig"}
    )
    idp.discovery_overrides["id_token_signing_alg_values_supported"] = ["RS256", "HS256"]
    idp.forge = lambda claims, header: sign(
        claims, {**header, "alg": "HS256", "kid": "hs"}, oct_key
    )
    assert_id_token_rejected(login(client, idp), client, idp)


def test_encryption_key_in_the_jwks_is_never_used_to_verify(
    client: TestClient, idp: FakeIdP
) -> None:
    idp.faults["jwks"] = _jwks(
        RSA_KEY.as_dict(private=False), {**RSA_KEY_2.as_dict(private=False), "use": "enc"}
    )
    idp.signing_key = RSA_KEY_2
    assert_id_token_rejected(login(client, idp), client, idp)


def test_key_bound_to_another_algorithm_is_not_used(client: TestClient, idp: FakeIdP) -> None:
    idp.faults["jwks"] = _jwks({**RSA_KEY.as_dict(private=False), "alg": "RS512"})
    assert_id_token_rejected(login(client, idp), client, idp)


def test_jwks_with_no_usable_key_is_an_idp_error(client: TestClient, idp: FakeIdP) -> None:
    idp.faults["jwks"] = _jwks({"kty": "oct", "k": "c2VjcmV0", "kid": "x"})
    response = login(client, idp)
    assert_refused(response, 502, "idp_error")
    assert idp.routes["userinfo"].called is False


def test_private_parts_published_by_mistake_are_dropped(client: TestClient, idp: FakeIdP) -> None:
    idp.faults["jwks"] = _jwks(RSA_KEY.as_dict(private=True), EC_KEY.as_dict(private=True))
    assert_signed_in(login(client, idp), client)
    keys = client.app.state.bridge.providers["acme"].jwks.value  # type: ignore[attr-defined]
    assert keys is not None
    assert all(not key.is_private for key in keys.keys)


# --- discovery at start-up ----------------------------------------------------------------


def test_discovery_failing_at_startup_leaves_the_bridge_serving_and_not_ready(
    settings_data: dict[str, Any], idps: dict[str, FakeIdP]
) -> None:
    idp = idps["acme"]
    idp.faults["discovery"] = httpx.Response(500, text="down")
    with app_client(settings_data, warm_up=True) as client:
        clock = install(client, FakeClock())
        assert client.get("/healthz").status_code == 200
        assert client.get("/").status_code == 200
        ready = client.get("/readyz")
        assert ready.status_code == 503
        report = ready.json()
        assert report["status"] == "not_ready"
        assert report["providers"]["acme"]["ready"] is False
        assert "acme" in report["providers"]["acme"]["detail"]
        assert report["providers"]["generic"]["ready"] is True
        assert_refused(client.get("/login/acme"), 502, "idp_error")
        # A failed discovery is not retried on every request.
        calls = idp.routes["discovery"].call_count
        for _ in range(5):
            client.get("/readyz")
        assert idp.routes["discovery"].call_count == calls == 1

        clock.advance(RETRY_AFTER_FAILURE)
        idp.faults.clear()
        ready = client.get("/readyz")
        assert ready.status_code == 200, ready.json()
        assert ready.json()["providers"]["acme"]["ready"] is True
        assert_signed_in(login(client, idp), client)


def test_discovery_timing_out_at_startup_recovers_on_its_own(
    settings_data: dict[str, Any], idps: dict[str, FakeIdP]
) -> None:
    idp = idps["acme"]
    idp.faults["discovery"] = httpx.ConnectTimeout
    with app_client(settings_data, warm_up=True) as client:
        clock = install(client, FakeClock())
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert "timed out" in ready.json()["providers"]["acme"]["detail"]
        idp.faults.clear()
        assert client.get("/readyz").status_code == 503, "not asked again during the back-off"
        clock.advance(RETRY_AFTER_FAILURE)
        assert client.get("/readyz").status_code == 200


def test_jwks_failing_at_startup_is_not_ready_then_recovers(
    settings_data: dict[str, Any], idps: dict[str, FakeIdP]
) -> None:
    idp = idps["acme"]
    idp.faults["jwks"] = httpx.Response(502)
    with app_client(settings_data, warm_up=True) as client:
        clock = install(client, FakeClock())
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["providers"]["acme"]["ready"] is False
        idp.faults.clear()
        assert client.get("/readyz").status_code == 503, "not asked again during the back-off"
        assert idp.routes["jwks"].call_count == 1
        clock.advance(RETRY_AFTER_FAILURE)
        assert client.get("/readyz").status_code == 200
        assert idp.routes["jwks"].call_count == 2
        assert_signed_in(login(client, idp), client)


@pytest.mark.parametrize(
    "doc",
    [
        httpx.Response(200, text="<html>not json</html>"),
        httpx.Response(200, json=["a", "list"]),
        httpx.Response(200, json={"issuer": "https://sso.acme.test/realms/acme"}),
        httpx.Response(200, content=b"{" + b" " * (600 * 1024) + b"}"),
        httpx.Response(301, headers={"location": "https://evil.test/.well-known/x"}),
    ],
    ids=["html", "list", "incomplete", "oversized", "redirect"],
)
def test_unusable_discovery_document_is_an_idp_error(
    client: TestClient, idp: FakeIdP, doc: httpx.Response
) -> None:
    idp.faults["discovery"] = doc
    assert_refused(client.get("/login/acme"), 502, "idp_error")


def test_discovery_advertising_only_symmetric_algorithms_is_an_idp_error(
    client: TestClient, idp: FakeIdP
) -> None:
    idp.discovery_overrides["id_token_signing_alg_values_supported"] = ["HS256", "none"]
    assert_refused(client.get("/login/acme"), 502, "idp_error")


# --- an IdP outage: back-off, single-flight, and one discovery per login -----------------


@pytest.fixture
def clock(client: TestClient) -> FakeClock:
    return install(client, FakeClock())


class _Hang:
    """An endpoint that never answers; counts the requests (respx records only answered ones)."""

    def __init__(self) -> None:
        self.calls = self.ended = 0

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        try:
            await asyncio.sleep(30)
        finally:
            self.ended += 1
        raise AssertionError("the bridge waited past its timeout")


def test_login_during_discovery_outage_asks_discovery_once_then_serves_the_cached_copy(
    client: TestClient, idp: FakeIdP, clock: FakeClock
) -> None:
    assert_signed_in(login(client, idp), client)
    clock.advance(METADATA_TTL)
    idp.faults["discovery"] = httpx.Response(503)
    assert_signed_in(login(client, idp), client)
    assert idp.routes["discovery"].call_count == 2, "one refresh, tried once for the whole login"
    for _ in range(4):
        assert_signed_in(login(client, idp), client)
    assert idp.routes["discovery"].call_count == 2, "not asked again during the back-off"
    assert idp.routes["jwks"].call_count == 2, "the keys, a day old too, refreshed once"


def test_login_during_hanging_discovery_completes_within_one_timeout(
    settings_data: dict[str, Any], request: pytest.FixtureRequest, idp: FakeIdP
) -> None:
    timeout = 2.0
    settings_data["providers"]["acme"]["timeout"] = timeout
    client: TestClient = request.getfixturevalue("client")
    clock: FakeClock = request.getfixturevalue("clock")
    assert_signed_in(login(client, idp), client)
    clock.advance(METADATA_TTL)
    idp.faults["discovery"] = hang = _Hang()

    started = time.perf_counter()
    assert_signed_in(login(client, idp), client)
    first = time.perf_counter() - started
    assert timeout <= first < timeout + 1.0, first
    assert hang.calls == 1

    started = time.perf_counter()
    assert_signed_in(login(client, idp), client)
    second = time.perf_counter() - started
    assert second < timeout, "during the back-off the cached copy serves at once"
    assert hang.calls == 1


def test_discovery_outage_is_retried_after_the_backoff_behind_the_cached_copy(
    settings_data: dict[str, Any], request: pytest.FixtureRequest, idp: FakeIdP
) -> None:
    timeout = 2.0
    settings_data["providers"]["acme"]["timeout"] = timeout
    client: TestClient = request.getfixturevalue("client")
    clock: FakeClock = request.getfixturevalue("clock")
    assert_signed_in(login(client, idp), client)
    clock.advance(METADATA_TTL)
    idp.faults["discovery"] = hang = _Hang()
    assert_signed_in(login(client, idp), client)
    assert hang.calls == 1

    clock.advance(RETRY_AFTER_FAILURE)
    started = time.perf_counter()
    assert_signed_in(login(client, idp), client)
    assert time.perf_counter() - started < timeout, "the retry does not hold the login"
    assert (hang.calls, hang.ended) == (2, 1), "the login returned with the retry still pending"


def test_concurrent_logins_during_a_failing_discovery_refresh_share_one_request(
    settings: Settings, idps: dict[str, FakeIdP]
) -> None:
    idp = idps["acme"]

    async def run() -> int:
        app = Bridge(settings)
        provider = app.providers["acme"]
        clock = install(app.providers, FakeClock())
        try:
            await provider.metadata()
            clock.advance(METADATA_TTL)
            idp.faults["discovery"] = _slow_failure()
            results = await asyncio.gather(*(provider.metadata() for _ in range(10)))
            assert {meta.issuer for meta in results} == {idp.issuer}
            return idp.routes["discovery"].call_count
        finally:
            await app.aclose()

    assert asyncio.run(run()) == 2, "the first load and exactly one shared refresh"


def test_concurrent_first_key_loads_share_one_jwks_request(
    settings: Settings, idps: dict[str, FakeIdP]
) -> None:
    idp = idps["acme"]

    async def run() -> int:
        app = Bridge(settings)
        provider = app.providers["acme"]
        try:
            await provider.metadata()
            idp.faults["jwks"] = _slow(lambda: httpx.Response(200, json=idp.jwks()))
            results = await asyncio.gather(*(provider.keys() for _ in range(10)))
            assert all(len(keys.keys) == 2 for keys in results)
            return idp.routes["jwks"].call_count
        finally:
            await app.aclose()

    assert asyncio.run(run()) == 1


def _slow(answer: Any, seconds: float = 0.05) -> Any:
    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(seconds)
        return answer()  # type: ignore[no-any-return]

    return slow


def _slow_failure() -> Any:
    return _slow(lambda: httpx.Response(503))


# --- what the JWKS refetch metric says -----------------------------------------------------


def test_refetch_for_an_unknown_kid_is_counted_as_unknown_kid(
    client: TestClient, idp: FakeIdP
) -> None:
    idp.forge = _unknown_kid
    assert_id_token_rejected(login(client, idp), client, idp)
    samples = scrape(client)
    assert value(samples, REFRESHES, provider="acme", reason="initial") == 1
    assert value(samples, REFRESHES, provider="acme", reason="unknown_kid") == 1
    assert value(samples, REFRESHES, provider="acme", reason="signature_mismatch") == 0


def test_refetch_for_a_key_replaced_under_its_kid_is_counted_as_signature_mismatch(
    client: TestClient, idp: FakeIdP
) -> None:
    assert_signed_in(login(client, idp), client)
    replacement = _rsa_key_with_kid("rsa-1")
    idp.signing_key, idp.published_keys = replacement, [replacement]
    assert_signed_in(login(client, idp), client)
    samples = scrape(client)
    assert value(samples, REFRESHES, provider="acme", reason="initial") == 1
    assert value(samples, REFRESHES, provider="acme", reason="signature_mismatch") == 1
    assert value(samples, REFRESHES, provider="acme", reason="unknown_kid") == 0


def test_refetch_for_a_token_without_kid_is_counted_as_signature_mismatch(
    client: TestClient, idp: FakeIdP
) -> None:
    idp.forge = lambda claims, header: sign(
        claims, {k: v for k, v in header.items() if k != "kid"}, ATTACKER_KEY
    )
    assert_id_token_rejected(login(client, idp), client, idp)
    samples = scrape(client)
    assert value(samples, REFRESHES, provider="acme", reason="signature_mismatch") == 1
    assert value(samples, REFRESHES, provider="acme", reason="unknown_kid") == 0


# --- where discovery may send the bridge ---------------------------------------------------

ENDPOINTS = [
    "authorization_endpoint",
    "token_endpoint",
    "jwks_uri",
    "userinfo_endpoint",
    "end_session_endpoint",
]


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_discovery_pointing_an_endpoint_at_plain_http_is_an_idp_error(
    client: TestClient, idp: FakeIdP, endpoint: str
) -> None:
    idp.discovery_overrides[endpoint] = "http://sso.acme.test/realms/acme/endpoint"
    assert_refused(client.get("/login/acme"), 502, "idp_error")
    assert idp.routes["jwks"].called is False


@pytest.mark.parametrize("host", ["127.0.0.1:8080", "localhost", "[::1]:9000"])
def test_plain_http_endpoint_on_loopback_is_accepted(
    client: TestClient, idp: FakeIdP, host: str
) -> None:
    idp.discovery_overrides["end_session_endpoint"] = f"http://{host}/logout"
    assert client.get("/login/acme").status_code == 302
