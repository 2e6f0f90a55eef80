"""Logout records for the cookie store: a session signed in at or before a logout is over."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from bridge.redis_client import RedisClient
from bridge.revocations import (
    MemoryRevocations,
    RedisRevocations,
    RevocationCheckingStore,
    Revocations,
)
from bridge.session_store import Loaded, SessionStore
from bridge.settings import parse_settings
from tests.conftest import base_settings

COOKIE = "sealed"


class Holding(SessionStore):
    """The session a cookie would carry, as loaded; saves and clears go nowhere."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    async def load(self, cookie: str) -> Loaded | None:
        return Loaded(data=self.data)

    async def save(self, data: Any, *, ttl: int, previous: Loaded | None, renew: bool) -> str:
        return COOKIE

    async def clear(self, previous: Loaded) -> None:
        return None


SESSION = {
    "u": {"_id": "x"},
    "sid": "bridge-session-1",
    "p": "acme",
    "sub": "user-1",
    "idp_sid": "sid-1",
    "at": 1000,
}


Opener = Callable[[], contextlib.AbstractAsyncContextManager[Revocations]]


def still_signed_in(revocations: Opener, session: dict[str, Any], **revoke: Any) -> bool:
    async def run() -> bool:
        async with revocations() as records:
            if revoke:
                await records.revoke("acme", **revoke)
            store = RevocationCheckingStore(Holding(session), records)
            return await store.load(COOKIE) is not None

    return asyncio.run(run())


@pytest.fixture(params=["memory", "redis"])
def revocations(request: pytest.FixtureRequest) -> Opener:
    """Opens the records for one event loop (a Redis client belongs to one), then closes."""
    if request.param == "memory":

        @contextlib.asynccontextmanager
        async def in_memory() -> AsyncIterator[Revocations]:
            yield MemoryRevocations(ttl=3600)

        return in_memory
    data = copy.deepcopy(base_settings())
    data["session"]["redis_url"] = request.getfixturevalue("redis_url")
    settings = parse_settings(data).session

    @contextlib.asynccontextmanager
    async def in_redis() -> AsyncIterator[Revocations]:
        client = RedisClient(settings)
        try:
            yield RedisRevocations(client, ttl=3600)
        finally:
            await client.aclose()

    return in_redis


@pytest.mark.parametrize(
    ("revoke", "signed_in"),
    [
        ({"sub": None, "sid": "sid-1", "at": 1000}, False),
        ({"sub": "user-1", "sid": None, "at": 1500}, False),
        ({"sub": "user-1", "sid": "sid-1", "at": 999}, True),
        ({"sub": None, "sid": "sid-2", "at": 1500}, True),
        ({"sub": "user-2", "sid": None, "at": 1500}, True),
        # A token with a sid ends that IdP session, not every session of its sub.
        ({"sub": "user-1", "sid": "sid-2", "at": 1500}, True),
    ],
    ids=["sid-at-sign-in", "sub-after", "before-sign-in", "other-sid", "other-sub",
         "sid-wins-over-sub"],
)  # fmt: skip
def test_a_session_signed_in_before_a_matching_logout_is_signed_out(
    revocations: Opener, revoke: dict[str, Any], signed_in: bool
) -> None:
    assert still_signed_in(revocations, SESSION, **revoke) is signed_in


def test_ending_a_session_ends_it_by_its_own_id_only(revocations: Opener) -> None:
    async def run() -> list[bool]:
        async with revocations() as records:
            session = {**SESSION, "at": int(time.time()) - 60}
            store = RevocationCheckingStore(Holding(session), records)
            loaded = await store.load(COOKIE)
            assert loaded is not None
            await store.clear(loaded)
            other = RevocationCheckingStore(Holding({**session, "sid": "another"}), records)
            return [await store.load(COOKIE) is None, await other.load(COOKIE) is None]

    assert asyncio.run(run()) == [True, False]


def test_a_session_without_a_sign_in_time_is_not_trusted(revocations: Opener) -> None:
    assert still_signed_in(revocations, {**SESSION, "at": "yesterday"}) is False


def test_pending_logins_are_not_checked(revocations: Opener) -> None:
    assert still_signed_in(revocations, {"flows": {}}, sub="user-1", sid=None, at=2000) is True


def test_memory_records_expire_with_the_longest_session() -> None:
    @contextlib.asynccontextmanager
    async def expiring() -> AsyncIterator[Revocations]:
        yield MemoryRevocations(ttl=0)

    assert still_signed_in(expiring, SESSION, sub="user-1", sid=None, at=2000)
