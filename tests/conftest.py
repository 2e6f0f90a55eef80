"""Shared fixtures: settings, fake IdPs behind respx, the app under Starlette's TestClient."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from starlette.testclient import TestClient

from bridge.settings import Settings, parse_settings
from bridge.web import create_app
from tests.idp import FakeIdP
from tests.servers import RedisServer

PUBLIC_URL = "http://127.0.0.1:8000"
PROJECT_ID = "64f0c0ffee00000000000001"
TILEDESK_SECRET = "0b1c6c52-41f7-4a8f-9d50-6a3c2f1a7e11"
SESSION_SECRET = "test-session-secret-0123456789-abcdefghij"
ISSUERS = {
    "acme": "https://sso.acme.test/realms/acme",
    "google": "https://accounts.google.com",
    "generic": "https://idp.example.test",
}


def base_settings() -> dict[str, Any]:
    fake = FakeIdP(issuer="unused")
    common = {"client_id": fake.client_id, "client_secret": fake.client_secret}
    return {
        "server": {"public_url": PUBLIC_URL},
        "session": {"secret": SESSION_SECRET},
        "tiledesk": {"project_id": PROJECT_ID, "secret": TILEDESK_SECRET},
        "providers": {
            "acme": {
                "preset": "keycloak",
                "base_url": "https://sso.acme.test",
                "realm": "acme",
                "display_name": "Acme SSO",
                "claims": {"attributes": {"groups": "groups"}},
                **common,
            },
            "google": {"preset": "google", **common},
            "generic": {"preset": "generic", "issuer": ISSUERS["generic"], **common},
        },
    }


@pytest.fixture
def settings_data() -> dict[str, Any]:
    """Edit this dict in a test before asking for ``client`` to change the settings."""
    return base_settings()


@pytest.fixture
def settings(settings_data: dict[str, Any]) -> Settings:
    return parse_settings(copy.deepcopy(settings_data))


@pytest.fixture
def mock_idp() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False, assert_all_mocked=True) as router:
        yield router


@pytest.fixture
def idps(mock_idp: respx.MockRouter) -> dict[str, FakeIdP]:
    return {name: FakeIdP(issuer=issuer).install(mock_idp) for name, issuer in ISSUERS.items()}


@pytest.fixture
def idp(idps: dict[str, FakeIdP]) -> FakeIdP:
    return idps["acme"]


@pytest.fixture
def client(settings: Settings, idps: dict[str, FakeIdP]) -> Iterator[TestClient]:
    app = create_app(settings, warm_up=False)
    with TestClient(app, base_url=PUBLIC_URL, follow_redirects=False) as test_client:
        yield test_client


@pytest.fixture
def new_client(settings: Settings, idps: dict[str, FakeIdP]) -> Iterator[Callable[[], TestClient]]:
    """Another browser: a client with its own cookie jar on the same app."""
    app = create_app(settings, warm_up=False)
    clients: list[TestClient] = []

    def make() -> TestClient:
        test_client = TestClient(app, base_url=PUBLIC_URL, follow_redirects=False)
        test_client.__enter__()
        clients.append(test_client)
        return test_client

    yield make
    for test_client in clients:
        test_client.__exit__(None, None, None)


@pytest.fixture
def entered() -> Iterator[Callable[[Any], TestClient]]:
    """``entered(app)``: a browser on ``app`` that stays open until the test ends.

    Each open client runs its app on an event loop of its own, as a process would: an app's
    Redis pool belongs to one loop, so two instances sharing a Redis are two apps.
    """
    clients: list[TestClient] = []

    def enter(app: Any) -> TestClient:
        client = TestClient(app, base_url=PUBLIC_URL, follow_redirects=False)
        client.__enter__()
        clients.append(client)
        return client

    yield enter
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One real redis-server for the session's tests (in memory only), emptied per test."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    redis_server.flush()
    return redis_server.url


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of the test's own, which it may stop, freeze and restart."""
    server = RedisServer(tmp_path, password="test-redis-password-0123456789")
    yield server
    server.stop()


def start_login(client: TestClient, provider: str = "acme", next_path: str | None = None) -> str:
    url = f"/login/{provider}" + (f"?next={next_path}" if next_path else "")
    response = client.get(url)
    assert response.status_code == 302, response.text
    return response.headers["location"]


def login(
    client: TestClient,
    idp: FakeIdP,
    provider: str = "acme",
    next_path: str | None = None,
    **extra: str,
) -> httpx.Response:
    """The whole code flow as a browser would run it; returns the callback's answer."""
    code, state = idp.authorize(start_login(client, provider, next_path))
    params = {"code": code, "state": state, **extra}
    return client.get(f"/callback/{provider}", params=params)


def auth(client: TestClient) -> httpx.Response:
    return client.post("/auth", headers={"Origin": PUBLIC_URL})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the browser suite last: Playwright's sync API keeps an event loop running on the
    main thread for the whole session, and tests that call asyncio.run() cannot share it."""
    items.sort(key=lambda item: item.get_closest_marker("e2e") is not None)
