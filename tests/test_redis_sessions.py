"""store = "redis": the cookie is a sealed ticket, the session lives encrypted in Redis.

Against a real redis-server. Two app instances built from the same settings stand for
two bridge processes behind a load balancer.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from typing import Any

import pytest
from starlette.testclient import TestClient

from bridge.redis_client import NAMESPACE, digest
from bridge.redis_sessions import Ticket
from bridge.session_store import CookieSealer
from bridge.settings import parse_settings
from bridge.web import create_app
from tests.conftest import PUBLIC_URL, SESSION_SECRET, auth, base_settings, login
from tests.idp import FakeIdP
from tests.security import set_session_cookie
from tests.servers import RedisServer

SEALER = CookieSealer(SESSION_SECRET, cookie_name="bridge_session")


def redis_settings(url: str) -> dict[str, Any]:
    data = copy.deepcopy(base_settings())
    data["session"].update({"store": "redis", "redis_url": url})
    return data


@pytest.fixture
def instance(
    redis_url: str, idps: dict[str, FakeIdP], entered: Callable[[Any], TestClient]
) -> Callable[[], TestClient]:
    """``instance()``: a browser on a bridge instance of its own; all share one Redis."""
    settings = parse_settings(redis_settings(redis_url))
    return lambda: entered(create_app(settings, warm_up=False))


def ticket_of(client: TestClient) -> Ticket:
    opened = SEALER.open(client.cookies["bridge_session"])
    assert opened is not None
    ticket = Ticket.decode(opened[0])
    assert ticket is not None
    return ticket


def session_keys(server: RedisServer) -> list[str]:
    return [k for k in server.stored_keys() if k.startswith(f"{NAMESPACE}:session:")]


def test_cookie_holds_only_a_sealed_ticket_and_redis_only_ciphertext(
    instance: Callable[[], TestClient], idp: FakeIdP, redis_server: RedisServer
) -> None:
    browser = instance()
    assert login(browser, idp).status_code == 303
    ticket = ticket_of(browser)
    assert len(ticket.id) == 22 and len(ticket.secret) == 16  # 128 bits each
    assert session_keys(redis_server) == [f"{NAMESPACE}:session:{ticket.id}"]
    with redis_server.client() as probe:
        blob = probe.get(f"{NAMESPACE}:session:{ticket.id}")
    assert isinstance(blob, bytes)
    for plain in (b"ada@acme.test", b"Lovelace", b"user-1", b"_id", b"acme"):
        assert plain not in blob
    assert not any("user-1" in key or "ada" in key for key in redis_server.stored_keys())


def test_session_key_expires_with_the_sessions_remaining_lifetime(
    instance: Callable[[], TestClient], idp: FakeIdP, redis_server: RedisServer
) -> None:
    browser = instance()
    assert login(browser, idp).status_code == 303
    with redis_server.client() as probe:
        ttl = probe.ttl(f"{NAMESPACE}:session:{ticket_of(browser).id}")
    assert 8 * 3600 - 5 <= ttl <= 8 * 3600


def test_signed_in_at_one_instance_is_signed_in_at_the_other(
    instance: Callable[[], TestClient], idp: FakeIdP
) -> None:
    first, second = instance(), instance()
    assert login(first, idp).status_code == 303
    second.cookies.update(first.cookies)
    answer = auth(second)
    assert answer.status_code == 200
    assert answer.json()["user"]["email"] == "ada@acme.test"


def test_sign_in_may_start_at_one_instance_and_finish_at_the_other(
    instance: Callable[[], TestClient], idp: FakeIdP
) -> None:
    first, second = instance(), instance()
    code, state = idp.authorize(first.get("/login/acme").headers["location"])
    second.cookies.update(first.cookies)
    assert second.get("/callback/acme", params={"code": code, "state": state}).status_code == 303
    assert auth(second).status_code == 200


def test_logout_deletes_the_session_so_a_copied_cookie_dies_at_every_instance(
    instance: Callable[[], TestClient], idp: FakeIdP, redis_server: RedisServer
) -> None:
    first, second, thief = instance(), instance(), instance()
    assert login(first, idp).status_code == 303
    thief.cookies.update(first.cookies)
    assert auth(thief).status_code == 200

    assert first.post("/logout", headers={"Origin": PUBLIC_URL}).status_code == 303

    second.cookies.update(thief.cookies)
    assert auth(second).json() == {"error": "not_signed_in"}
    assert auth(thief).status_code == 401
    assert session_keys(redis_server) == []
    with redis_server.client() as probe:
        assert probe.smembers(f"{NAMESPACE}:by-sub:{digest('acme', 'user-1')}") == set()


def test_a_new_sign_in_gets_a_new_ticket_and_the_old_session_is_gone(
    instance: Callable[[], TestClient], idp: FakeIdP, redis_server: RedisServer
) -> None:
    browser = instance()
    assert login(browser, idp).status_code == 303
    before = ticket_of(browser)
    assert login(browser, idp).status_code == 303
    after = ticket_of(browser)
    assert after.id != before.id and after.secret != before.secret
    assert session_keys(redis_server) == [f"{NAMESPACE}:session:{after.id}"]


def test_the_per_person_index_names_each_session_of_one_person(
    instance: Callable[[], TestClient], idp: FakeIdP, redis_server: RedisServer
) -> None:
    idp.user["sid"] = "idp-session-1"
    laptop, phone = instance(), instance()
    assert login(laptop, idp).status_code == 303
    idp.user["sid"] = "idp-session-2"
    assert login(phone, idp).status_code == 303
    with redis_server.client() as probe:
        by_sub = probe.smembers(f"{NAMESPACE}:by-sub:{digest('acme', 'user-1')}")
        by_sid = probe.smembers(f"{NAMESPACE}:by-sid:{digest('acme', 'idp-session-2')}")
        index_ttl = probe.ttl(f"{NAMESPACE}:by-sub:{digest('acme', 'user-1')}")
    assert by_sub == {ticket_of(laptop).id.encode(), ticket_of(phone).id.encode()}
    assert by_sid == {ticket_of(phone).id.encode()}
    assert 8 * 3600 - 5 <= index_ttl <= 8 * 3600


def test_reading_pages_and_tokens_writes_nothing_to_redis(
    instance: Callable[[], TestClient], idp: FakeIdP, redis_server: RedisServer
) -> None:
    visitor = instance()
    assert visitor.get("/").status_code == 200
    assert redis_server.stored_keys() == []
    assert login(visitor, idp).status_code == 303
    key = f"{NAMESPACE}:session:{ticket_of(visitor).id}"
    with redis_server.client() as probe:
        stored = probe.get(key)
        for _ in range(3):
            assert auth(visitor).status_code == 200
            assert visitor.get("/").status_code == 200
        assert probe.get(key) == stored  # each save re-encrypts: equal bytes, no write


def test_a_ticket_with_the_wrong_secret_is_signed_out_not_an_error(
    instance: Callable[[], TestClient], idp: FakeIdP
) -> None:
    browser = instance()
    assert login(browser, idp).status_code == 303
    forged = Ticket(ticket_of(browser).id, bytes(16))
    set_session_cookie(browser, SEALER.seal(forged.encode()))
    assert auth(browser).status_code == 401


@pytest.mark.parametrize(
    "value", ["", "garbage", "v1.AAAA", SEALER.seal(b"no-dot"), SEALER.seal(b"a.b")]
)
def test_malformed_tickets_are_signed_out_not_an_error(
    instance: Callable[[], TestClient], value: str
) -> None:
    browser = instance()
    set_session_cookie(browser, value)
    assert auth(browser).status_code == 401


def test_logs_never_hold_the_ticket_the_cookie_or_the_redis_password(
    own_redis: RedisServer, idps: dict[str, FakeIdP], caplog: pytest.LogCaptureFixture
) -> None:
    data = redis_settings(f"redis://127.0.0.1:{own_redis.port}/0")
    data["session"]["redis_password"] = own_redis.password
    app = create_app(parse_settings(data), warm_up=False)
    caplog.set_level(logging.DEBUG)
    with TestClient(app, base_url=PUBLIC_URL, follow_redirects=False) as browser:
        assert login(browser, idps["acme"]).status_code == 303
        cookie = browser.cookies["bridge_session"]
        ticket = ticket_of(browser)
        assert auth(browser).status_code == 200
        own_redis.stop()
        assert auth(browser).status_code == 503
        own_redis.start()
        assert browser.post("/logout", headers={"Origin": PUBLIC_URL}).status_code == 303
    logged = "\n".join(
        f"{r.getMessage()} {getattr(r, 'fields', '')} {r.exc_text or ''}" for r in caplog.records
    )
    assert "store_unavailable" in logged
    assert own_redis.password is not None
    for secret in (cookie, ticket.id, ticket.encode().decode(), own_redis.password):
        assert secret not in logged
