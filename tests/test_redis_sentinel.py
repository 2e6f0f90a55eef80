"""Redis Sentinel: ``redis_url = "redis+sentinel://…"`` finds the primary through a real
Sentinel (``redis-server --sentinel``), and a primary the Sentinel does not know is a 503."""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from bridge import cli
from bridge.redis_client import NAMESPACE
from bridge.settings import parse_settings
from bridge.web import create_app
from tests.conftest import PUBLIC_URL, auth, base_settings, login
from tests.idp import FakeIdP
from tests.security import error_code
from tests.servers import RedisSentinel, RedisServer

PASSWORD = "test-redis-password-0123456789"


@pytest.fixture
def sentinel(tmp_path: Path) -> Iterator[tuple[RedisServer, RedisSentinel]]:
    primary = RedisServer(tmp_path, password=PASSWORD)
    watcher = RedisSentinel(tmp_path, primary)
    yield primary, watcher
    watcher.stop()
    primary.stop()


def sentinel_settings(url: str) -> dict[str, Any]:
    data = copy.deepcopy(base_settings())
    data["session"].update(
        {"store": "redis", "redis_url": url, "redis_password": PASSWORD, "redis_timeout": 0.5}
    )
    return data


def test_sessions_live_on_the_primary_the_sentinel_names(
    sentinel: tuple[RedisServer, RedisSentinel], idps: dict[str, FakeIdP]
) -> None:
    primary, watcher = sentinel
    app = create_app(parse_settings(sentinel_settings(watcher.url())), warm_up=False)
    with TestClient(app, base_url=PUBLIC_URL, follow_redirects=False) as browser:
        assert login(browser, idps["acme"]).status_code == 303
        assert auth(browser).status_code == 200
        ready = browser.get("/readyz").json()["store"]
    assert ready == {"ready": True, "detail": "ready", "sessions": "redis", "shared": "redis"}
    kinds = {key.split(":")[1] for key in primary.stored_keys()}
    assert {"session", "spent"} <= kinds
    assert all(key.startswith(f"{NAMESPACE}:") for key in primary.stored_keys())


def test_a_primary_the_sentinel_does_not_know_is_a_503_not_a_guess(
    sentinel: tuple[RedisServer, RedisSentinel], idps: dict[str, FakeIdP]
) -> None:
    _, watcher = sentinel
    app = create_app(parse_settings(sentinel_settings(watcher.url("nosuch"))), warm_up=False)
    with TestClient(app, base_url=PUBLIC_URL, follow_redirects=False) as browser:
        started = browser.get("/login/acme")
        assert started.status_code == 503
        assert error_code(started) == "store_unavailable"
        ready = browser.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["store"] == {
        "ready": False,
        "detail": "redis: ping failed: MasterNotFoundError",
        "sessions": "redis",
        "shared": "redis",
    }


def test_check_names_the_sentinels_and_the_primary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = tmp_path / "settings.toml"
    settings.write_text(
        f"""
[server]
public_url = "https://chat.acme.test"

[session]
secret = "{"s" * 40}"
store = "redis"
redis_url = "redis+sentinel://10.0.0.1:26379,10.0.0.2/mymaster/1"

[tiledesk]
project_id = "64f0c0ffee00000000000001"
secret = "0b1c6c52-41f7-4a8f-9d50-6a3c2f1a7e11"

[providers.acme]
preset = "generic"
issuer = "https://idp.acme.test"
client_id = "bridge"
client_secret = "x"
"""
    )
    assert cli.main(["check", "--settings", str(settings)]) == 0
    out = capsys.readouterr().out
    assert (
        "sessions: in Redis behind an opaque ticket; spent states and logout records in Redis "
        "through Sentinel at 10.0.0.1:26379, 10.0.0.2:26379 (primary mymaster, db 1)"
    ) in out


def test_a_failover_keeps_the_visitor_signed_in(tmp_path: Path, idps: dict[str, FakeIdP]) -> None:
    """The replica Sentinel promotes holds the session; the bridge follows it on its own."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    primary = RedisServer(tmp_path / "a", password=PASSWORD)
    replica = RedisServer(tmp_path / "b", password=PASSWORD, replica_of=primary)
    watcher = RedisSentinel(tmp_path, primary)
    try:
        app = create_app(parse_settings(sentinel_settings(watcher.url())), warm_up=False)
        with TestClient(app, base_url=PUBLIC_URL, follow_redirects=False) as browser:
            assert login(browser, idps["acme"]).status_code == 303
            assert auth(browser).status_code == 200
            # The replica may still be making its first sync on a busy machine: wait for
            # it to acknowledge the writes so far, a second at a time (the probe's socket
            # timeout is 2 s), for up to 30 s.
            deadline = time.monotonic() + 30
            with primary.client() as probe:
                while probe.execute_command("WAIT", 1, 1000) != 1:
                    assert time.monotonic() < deadline, "the replica never caught up"
            watcher.fail_over()
            assert watcher.primary_port() == replica.port
            assert auth(browser).status_code == 200
            assert auth(browser).status_code == 200
    finally:
        watcher.stop()
        replica.stop()
        primary.stop()
