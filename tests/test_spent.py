"""A login's state is good for one callback, on every instance: Redis SET NX across them."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from starlette.testclient import TestClient

from bridge.redis_client import NAMESPACE, RedisClient
from bridge.settings import parse_settings
from bridge.spent import MemorySpent, RedisSpent
from bridge.web import create_app
from tests.conftest import PUBLIC_URL, base_settings, start_login
from tests.idp import FakeIdP
from tests.security import error_code
from tests.servers import RedisServer


def with_redis(url: str, **session: Any) -> dict[str, Any]:
    data = copy.deepcopy(base_settings())
    data["session"].update({"redis_url": url, **session})
    return data


def test_memory_spends_a_value_once_per_kind() -> None:
    async def run() -> list[bool]:
        spent = MemorySpent()
        return [
            await spent.spend("state", "abc", 60),
            await spent.spend("state", "abc", 60),
            await spent.spend("jti", "abc", 60),
        ]

    assert asyncio.run(run()) == [True, False, True]


def test_memory_keeps_no_text_of_the_values_and_stays_within_its_limit() -> None:
    spent = MemorySpent(limit=100)

    async def spend_all() -> list[bool]:
        return [await spent.spend("state", f"state-{i:04d}-" + "x" * 40, 600) for i in range(1000)]

    assert asyncio.run(spend_all()) == [True] * 1000
    assert len(spent._seen) == 100
    assert all(isinstance(key, int) for key in spent._seen)


def test_memory_forgets_a_value_after_its_ttl() -> None:
    async def run() -> list[bool]:
        spent = MemorySpent()
        first = await spent.spend("state", "abc", 0)
        return [first, await spent.spend("state", "abc", 60)]

    assert asyncio.run(run()) == [True, True]


def test_redis_spends_a_value_once_under_a_hashed_expiring_key(
    redis_url: str, redis_server: RedisServer
) -> None:
    settings = parse_settings(with_redis(redis_url))

    async def run() -> list[bool]:
        client = RedisClient(settings.session)
        try:
            spent = RedisSpent(client)
            return [
                await spent.spend("state", "the-state-value", 600),
                await spent.spend("state", "the-state-value", 600),
            ]
        finally:
            await client.aclose()

    assert asyncio.run(run()) == [True, False]
    (key,) = redis_server.stored_keys()
    assert key.startswith(f"{NAMESPACE}:spent:state:")
    assert "the-state-value" not in key
    with redis_server.client() as probe:
        assert 595 <= probe.ttl(key) <= 600


def test_replayed_callback_is_refused_by_another_instance(
    redis_url: str, idp: FakeIdP, idps: dict[str, FakeIdP]
) -> None:
    """Two instances share Redis: the callback an attacker replays at the second one,
    with the cookie from before the first callback, never reaches the IdP."""
    settings = parse_settings(with_redis(redis_url))
    first, second = create_app(settings, warm_up=False), create_app(settings, warm_up=False)
    with (
        TestClient(first, base_url=PUBLIC_URL, follow_redirects=False) as browser,
        TestClient(second, base_url=PUBLIC_URL, follow_redirects=False) as replay,
    ):
        code, state = idp.authorize(start_login(browser))
        replay.cookies.update(browser.cookies)
        params = {"code": code, "state": state}
        assert browser.get("/callback/acme", params=params).status_code == 303
        token_calls = idp.routes["token"].call_count

        response = replay.get("/callback/acme", params=params)

        assert response.status_code == 400
        assert error_code(response) == "state_mismatch"
        assert idp.routes["token"].call_count == token_calls
