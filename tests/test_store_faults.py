"""Redis down, hung or restarted: clear 503s within the timeout, nobody let in, recovery alone.

Every test runs its own real redis-server (with a password) and stops, freezes or
restarts it.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from bridge.settings import parse_settings
from bridge.web import create_app
from tests.conftest import PUBLIC_URL, auth, base_settings, start_login
from tests.idp import FakeIdP
from tests.security import error_code
from tests.servers import RedisServer

TIMEOUT = 0.3
#: A call may be retried once on a fresh connection; add scheduling slack on a busy machine.
BOUND = TIMEOUT * 2 + 1.0


def settings_for(server: RedisServer, **session: Any) -> dict[str, Any]:
    data = copy.deepcopy(base_settings())
    data["session"].update(
        {
            "redis_url": f"redis://127.0.0.1:{server.port}/0",
            "redis_password": server.password,
            "redis_timeout": TIMEOUT,
            **session,
        }
    )
    return data


@pytest.fixture
def bridge(own_redis: RedisServer, idps: dict[str, FakeIdP]) -> Iterator[TestClient]:
    app = create_app(parse_settings(settings_for(own_redis)), warm_up=False)
    with TestClient(app, base_url=PUBLIC_URL, follow_redirects=False) as client:
        yield client


def callback(client: TestClient, idp: FakeIdP) -> Any:
    code, state = idp.authorize(start_login(client))
    return client.get("/callback/acme", params={"code": code, "state": state})


def timed(call: Any) -> tuple[Any, float]:
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


def test_callback_answers_503_store_unavailable_while_redis_is_stopped(
    bridge: TestClient, own_redis: RedisServer, idp: FakeIdP
) -> None:
    own_redis.stop()
    response, took = timed(lambda: callback(bridge, idp))
    assert response.status_code == 503
    assert error_code(response) == "store_unavailable"
    assert took < BOUND
    assert idp.routes["token"].call_count == 0
    own_redis.start()
    assert auth(bridge).status_code == 401


def test_callback_answers_503_within_the_timeout_while_redis_hangs(
    bridge: TestClient, own_redis: RedisServer, idp: FakeIdP
) -> None:
    assert callback(bridge, idp).status_code == 303  # a pooled connection exists
    own_redis.pause()
    response, took = timed(lambda: callback(bridge, idp))
    assert response.status_code == 503
    assert error_code(response) == "store_unavailable"
    assert took < BOUND


def test_readyz_names_the_store_while_redis_is_down_and_recovers(
    bridge: TestClient, own_redis: RedisServer
) -> None:
    assert bridge.get("/readyz").json()["store"] == {
        "sessions": "cookie",
        "shared": "redis",
        "ready": True,
        "detail": "ready",
    }
    own_redis.stop()
    response = bridge.get("/readyz")
    assert response.status_code == 503
    assert response.json()["status"] == "not_ready"
    assert response.json()["store"] == {
        "sessions": "cookie",
        "shared": "redis",
        "ready": False,
        "detail": "redis: ping failed: ConnectionError",
    }
    own_redis.start()
    assert bridge.get("/readyz").json()["store"]["ready"] is True


def test_sign_in_works_again_once_redis_restarts(
    bridge: TestClient, own_redis: RedisServer, idp: FakeIdP
) -> None:
    assert callback(bridge, idp).status_code == 303
    own_redis.stop()
    assert callback(bridge, idp).status_code == 503
    own_redis.start()
    response = callback(bridge, idp)
    assert response.status_code == 303
    assert response.headers["location"] == f"{PUBLIC_URL}/"


def test_a_redis_restart_between_requests_costs_no_one_a_sign_in(
    bridge: TestClient, own_redis: RedisServer, idp: FakeIdP
) -> None:
    """The pooled connections die with the server; the one retry on a fresh connection
    hides that from the first visitor after the restart."""
    assert callback(bridge, idp).status_code == 303
    own_redis.restart()
    assert callback(bridge, idp).status_code == 303


def test_a_wrong_redis_password_is_a_503_not_a_sign_in(
    own_redis: RedisServer, idps: dict[str, FakeIdP]
) -> None:
    data = settings_for(own_redis, redis_password="not-the-password-0123456789")
    app = create_app(parse_settings(data), warm_up=False)
    with TestClient(app, base_url=PUBLIC_URL, follow_redirects=False) as client:
        response = callback(client, idps["acme"])
        assert response.status_code == 503
        assert error_code(response) == "store_unavailable"
        assert client.get("/readyz").json()["store"]["detail"] == (
            "redis: ping failed: AuthenticationError"
        )
