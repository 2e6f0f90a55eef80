"""Single-use values (a login's ``state``, a logout token's ``jti``): the first use wins.

The cookie cannot make a value single-use (an old cookie can be replayed), so the
bridge remembers what it has spent until the value would be refused anyway. In one
process a memory suffices; several instances share Redis, where an atomic
set-if-absent (``SET NX EX``) decides the race between them.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Protocol

from bridge.redis_client import RedisClient, digest


class Spent(Protocol):
    async def spend(self, kind: str, value: str, ttl: int) -> bool:
        """True the first time ``value`` is spent (remembered ``ttl`` seconds), False after."""


class MemorySpent:
    """This process's memory: the oldest entries go first, and beyond ``limit``.

    Each value is kept as the 64-bit hash of (kind, value), not its text: a state costs
    about half the memory, and a collision would only refuse one sign-in.
    """

    def __init__(self, limit: int = 100_000) -> None:
        self._seen: OrderedDict[int, float] = OrderedDict()
        self._limit = limit

    async def spend(self, kind: str, value: str, ttl: int) -> bool:
        now = time.monotonic()
        while self._seen and next(iter(self._seen.values())) <= now:
            self._seen.popitem(last=False)
        entry = hash((kind, value))
        if entry in self._seen and self._seen[entry] > now:
            return False
        self._seen[entry] = now + ttl
        self._seen.move_to_end(entry)
        while len(self._seen) > self._limit:
            self._seen.popitem(last=False)
        return True


class RedisSpent:
    """Shared by every instance: one ``SET NX EX`` per value, under a hashed key."""

    def __init__(self, client: RedisClient) -> None:
        self._client = client

    async def spend(self, kind: str, value: str, ttl: int) -> bool:
        key = self._client.key("spent", kind, digest(value))
        created = await self._client.run(
            f"spend a {kind}", lambda redis: redis.set(key, b"1", nx=True, ex=ttl)
        )
        return created is True
