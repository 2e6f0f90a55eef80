"""One-time handles in Redis: a site's sign-in may end on one instance and be redeemed on
another, and a sign-out from a site may come back from the IdP to either.

Against a real redis-server. Each app (or store) has its own Redis connection pool, as a
process would; they share the server.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pytest
from starlette.testclient import TestClient

from bridge.errors import StoreUnavailable
from bridge.handles import RedisHandleStore
from bridge.redis_client import NAMESPACE, RedisClient
from bridge.settings import parse_settings
from bridge.web import create_app
from tests.idp import FakeIdP
from tests.servers import RedisServer
from tests.test_embed import BLOG, PAGE, SHOP, keys, landing, settings_with, site_login


def redeem(client: TestClient, handle: str, verifier: str) -> httpx.Response:
    """The site page's POST /auth, without the bridge's cookie, on this instance's own loop
    (its Redis connections belong to that loop, as in a process)."""
    jar, client.cookies = client.cookies, httpx.Cookies()
    try:
        return client.post(
            "/auth", json={"handle": handle, "verifier": verifier}, headers={"Origin": SHOP}
        )
    finally:
        client.cookies = jar


def store_on(url: str) -> tuple[RedisHandleStore, RedisClient]:
    data = settings_with({SHOP: {}})
    data["session"]["redis_url"] = url
    client = RedisClient(parse_settings(data).session)
    return RedisHandleStore(client), client


def test_a_redis_handle_is_redeemed_once_by_its_origin_from_any_instance(redis_url: str) -> None:
    async def scenario() -> list[Any]:
        (one, one_client), (other, other_client) = store_on(redis_url), store_on(redis_url)
        try:
            first = await one.issue({"x": 1}, SHOP, ttl=60)
            second = await one.issue({"x": 2}, SHOP, ttl=60)
            expired = await one.issue({"x": 3}, SHOP, ttl=0)
            brief = await one.issue({"x": 4}, SHOP, ttl=0.2)
            await asyncio.sleep(0.4)
            return [
                await other.redeem(first, SHOP),
                await one.redeem(first, SHOP),
                await other.redeem(first, SHOP),
                await other.redeem(second, BLOG),
                await one.redeem(second, SHOP),
                await other.redeem(expired, SHOP),
                await other.redeem(brief, SHOP),
                await other.redeem("x" * 43, SHOP),
                len(first),
            ]
        finally:
            await one_client.aclose()
            await other_client.aclose()

    assert asyncio.run(scenario()) == [{"x": 1}, None, None, None, None, None, None, None, 43]


def test_redis_learns_neither_the_handle_nor_what_it_stands_for(
    redis_server: RedisServer, redis_url: str
) -> None:
    secret = {"user": {"email": "ada@acme.test", "_id": "p_acme_ada"}, "challenge": "c" * 43}

    async def scenario() -> tuple[str, int]:
        store, client = store_on(redis_url)
        try:
            handle = await store.issue(secret, SHOP, ttl=60)
            return handle, await client.redis.pttl(redis_server.stored_keys()[0])
        finally:
            await client.aclose()

    handle, ttl_ms = asyncio.run(scenario())
    (key,) = redis_server.stored_keys()
    assert key.startswith(f"{NAMESPACE}:handle:")
    assert handle not in key
    with redis_server.client() as probe:
        stored = probe.get(key)
    assert stored is not None
    for clear in (b"ada@acme.test", b"p_acme_ada", b"c" * 43, handle.encode(), SHOP.encode()):
        assert clear not in stored
    assert 59_000 < ttl_ms <= 60_000


def test_a_handle_store_that_cannot_reach_redis_says_so(own_redis: RedisServer) -> None:
    async def scenario() -> list[str]:
        store, client = store_on(own_redis.url)
        codes = []
        try:
            handle = await store.issue({"x": 1}, SHOP, ttl=60)
            own_redis.stop()
            for call in (store.issue({"x": 2}, SHOP, ttl=60), store.redeem(handle, SHOP)):
                try:
                    await call
                except StoreUnavailable as exc:
                    codes.append(exc.code)
        finally:
            await client.aclose()
        return codes

    assert asyncio.run(scenario()) == ["store_unavailable", "store_unavailable"]


@pytest.fixture
def instances(
    redis_url: str, idps: dict[str, FakeIdP], entered: Callable[[Any], TestClient]
) -> Callable[[], TestClient]:
    """``instances()``: a browser on a bridge instance of its own; all share one Redis."""
    data = copy.deepcopy(settings_with({SHOP: {}, BLOG: {}}))
    data["session"]["redis_url"] = redis_url
    settings = parse_settings(data)
    return lambda: entered(create_app(settings, warm_up=False))


def test_the_bridge_keeps_handles_in_redis_when_it_has_one(
    instances: Callable[[], TestClient],
) -> None:
    app = instances().app
    assert isinstance(app.state.bridge.handles, RedisHandleStore)  # type: ignore[attr-defined]


def test_a_site_sign_in_ended_on_one_instance_is_redeemed_on_another(
    instances: Callable[[], TestClient], idp: FakeIdP
) -> None:
    popup, site = instances(), instances()
    verifier, challenge = keys()
    handle = landing(site_login(popup, idp, challenge=challenge))["tdb_handle"]

    token = redeem(site, handle, verifier)
    assert token.status_code == 200, token.text
    assert token.json()["user"]["email"] == idp.user["email"]
    assert redeem(popup, handle, verifier).status_code == 401, "spent on every instance"


def test_a_site_sign_out_comes_back_through_another_instance(
    instances: Callable[[], TestClient], idp: FakeIdP
) -> None:
    first, second = instances(), instances()
    _verifier, challenge = keys()
    landing(site_login(first, idp, challenge=challenge))
    answer = first.post(f"/logout?return_to={quote(PAGE)}", headers={"Origin": SHOP})
    assert answer.status_code == 200, answer.text
    state = parse_qs(urlsplit(answer.json()["redirect"]).query)["state"][0]

    # The IdP sends the visitor back to the registered URI: the balancer picks the other one.
    back = second.get("/", params={"state": state})
    assert back.status_code == 303, back.text
    assert back.headers["location"] == PAGE
    assert first.get("/", params={"state": state}).status_code == 200, "single use everywhere"


def test_redeeming_a_handle_while_redis_is_down_is_a_503(
    own_redis: RedisServer, idps: dict[str, FakeIdP]
) -> None:
    data = settings_with({SHOP: {}})
    data["session"].update(redis_url=own_redis.url)
    client = TestClient(create_app(parse_settings(data), warm_up=False))
    with client:
        client.follow_redirects = False
        verifier, challenge = keys()
        handle = landing(site_login(client, idps["acme"], challenge=challenge))["tdb_handle"]
        own_redis.stop()
        answer = redeem(client, handle, verifier)
    assert answer.status_code == 503
    assert answer.json() == {"error": "store_unavailable"}
