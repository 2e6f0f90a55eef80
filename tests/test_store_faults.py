"""Redis down, hung or restarted: clear 503s within the timeout, nobody let in, recovery alone.

Every test runs its own real redis-server (with a password) and stops, freezes
(SIGSTOP) or restarts it, with either session store: ``redis`` (sessions in Redis)
and ``cookie`` with ``redis_url`` (sessions in the cookie; spent states and logout
records in Redis).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from starlette.testclient import TestClient

from bridge.settings import parse_settings
from bridge.web import create_app
from tests.conftest import PUBLIC_URL, auth, base_settings, login
from tests.idp import FakeIdP
from tests.security import error_code
from tests.servers import RedisServer

T = TypeVar("T")
TIMEOUT = 0.3
#: A call may be retried once on a fresh connection; add scheduling slack on a busy machine.
BOUND = TIMEOUT * 2 + 1.0


def settings_for(server: RedisServer, store: str, **session: Any) -> dict[str, Any]:
    data = copy.deepcopy(base_settings())
    data["session"].update(
        {
            "store": store,
            "redis_url": f"redis://127.0.0.1:{server.port}/0",
            "redis_password": server.password,
            "redis_timeout": TIMEOUT,
            **session,
        }
    )
    return data


@pytest.fixture(params=["redis", "cookie"])
def store(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def bridge(own_redis: RedisServer, store: str, idps: dict[str, FakeIdP]) -> Iterator[TestClient]:
    app = create_app(parse_settings(settings_for(own_redis, store)), warm_up=False)
    with TestClient(app, base_url=PUBLIC_URL, follow_redirects=False) as client:
        yield client


@pytest.fixture
def signed_in(bridge: TestClient, idp: FakeIdP) -> TestClient:
    assert login(bridge, idp).status_code == 303
    assert auth(bridge).status_code == 200
    return bridge


def timed(call: Callable[[], T]) -> tuple[T, float]:
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


def assert_store_unavailable_json(response: httpx.Response) -> None:
    assert response.status_code == 503
    assert response.json() == {"error": "store_unavailable"}
    assert response.headers["cache-control"] == "no-store"


def test_auth_answers_503_store_unavailable_while_redis_is_stopped(
    signed_in: TestClient, own_redis: RedisServer
) -> None:
    own_redis.stop()
    response, took = timed(lambda: auth(signed_in))
    assert_store_unavailable_json(response)
    assert took < BOUND


def test_auth_answers_503_within_the_timeout_while_redis_hangs(
    signed_in: TestClient, own_redis: RedisServer
) -> None:
    own_redis.pause()
    response, took = timed(lambda: auth(signed_in))
    assert_store_unavailable_json(response)
    assert took < BOUND


def test_sign_in_answers_503_store_unavailable_while_redis_is_stopped(
    bridge: TestClient, own_redis: RedisServer, idp: FakeIdP, store: str
) -> None:
    own_redis.stop()
    started = bridge.get("/login/acme")
    if store == "redis":
        # The pending login itself lives in Redis.
        response = started
    else:
        assert started.status_code == 302
        code, state = idp.authorize(started.headers["location"])
        response = bridge.get("/callback/acme", params={"code": code, "state": state})
    assert response.status_code == 503
    assert error_code(response) == "store_unavailable"
    assert idp.routes["token"].call_count == 0


def test_readyz_names_the_store_while_redis_is_down_and_recovers(
    bridge: TestClient, own_redis: RedisServer, store: str
) -> None:
    assert bridge.get("/readyz").json()["store"] == {
        "sessions": store,
        "shared": "redis",
        "ready": True,
        "detail": "ready",
    }
    own_redis.stop()
    response = bridge.get("/readyz")
    assert response.status_code == 503
    assert response.json()["status"] == "not_ready"
    assert response.json()["store"] == {
        "sessions": store,
        "shared": "redis",
        "ready": False,
        "detail": "redis: ping failed: ConnectionError",
    }
    own_redis.start()
    assert bridge.get("/readyz").json()["store"]["ready"] is True


def test_sign_in_works_again_on_its_own_once_redis_is_back(
    signed_in: TestClient, own_redis: RedisServer, idp: FakeIdP, store: str
) -> None:
    own_redis.stop()
    assert auth(signed_in).status_code == 503
    own_redis.start()
    # This Redis keeps nothing across a restart: sessions kept in it are gone (never
    # anyone else's), a sealed cookie still holds its own.
    assert auth(signed_in).status_code == (401 if store == "redis" else 200)
    assert login(signed_in, idp).status_code == 303
    assert auth(signed_in).status_code == 200


def test_a_redis_restart_between_requests_costs_no_one_a_request(
    signed_in: TestClient, own_redis: RedisServer, idp: FakeIdP
) -> None:
    """The pooled connections die with the server; the one retry on a fresh connection
    hides that from the first visitor after the restart."""
    own_redis.restart()
    response = login(signed_in, idp)
    assert response.status_code == 303
    assert response.headers["location"] == f"{PUBLIC_URL}/"


def test_a_wrong_redis_password_is_a_503_not_a_sign_in(
    own_redis: RedisServer, store: str, idps: dict[str, FakeIdP]
) -> None:
    data = settings_for(own_redis, store, redis_password="not-the-password-0123456789")
    app = create_app(parse_settings(data), warm_up=False)
    with TestClient(app, base_url=PUBLIC_URL, follow_redirects=False) as client:
        started = client.get("/login/acme")
        if store == "redis":
            response = started
        else:
            code, state = idps["acme"].authorize(started.headers["location"])
            response = client.get("/callback/acme", params={"code": code, "state": state})
        assert response.status_code == 503
        assert error_code(response) == "store_unavailable"
        assert client.get("/readyz").json()["store"]["detail"] == (
            "redis: ping failed: AuthenticationError"
        )


@pytest.mark.parametrize("persistent", [True, False], ids=["appendonly", "in-memory"])
def test_a_session_outlives_a_redis_restart_exactly_when_redis_persisted_it(
    tmp_path: Path, idps: dict[str, FakeIdP], persistent: bool
) -> None:
    """With ``appendonly yes`` the visitor is still signed in after Redis restarts; without
    persistence the session is gone, and the answer is a plain 401 (never a 500, never in)."""
    server = RedisServer(tmp_path, persistent=persistent)
    try:
        app = create_app(parse_settings(settings_for(server, "redis")), warm_up=False)
        with TestClient(app, base_url=PUBLIC_URL, follow_redirects=False) as browser:
            assert login(browser, idps["acme"]).status_code == 303
            assert auth(browser).status_code == 200
            server.restart()
            answer = auth(browser)
            assert answer.status_code == (200 if persistent else 401), answer.text
            assert auth(browser).status_code == (200 if persistent else 401)
    finally:
        server.stop()
