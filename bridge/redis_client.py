"""The one Redis connection of a process: a bounded pool, short timeouts, namespaced keys.

Every Redis call goes through :meth:`RedisClient.run`, which turns any Redis failure
(refused, timed out, restarted, out of connections) into ``StoreUnavailable``: the
bridge answers 503 ``store_unavailable`` instead of guessing whether someone is
signed in. Keys are hashed where they hold anything a visitor sent, so nothing in
Redis names a state, a token id or a person in clear.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError, RedisError

from bridge.errors import StoreUnavailable
from bridge.settings import SENTINEL_SCHEME, SessionSettings, parse_sentinel_url

log = logging.getLogger("bridge.store")

T = TypeVar("T")

#: Every key the bridge writes starts with this, so a shared Redis stays readable.
NAMESPACE = "tiledesk-bridge"
#: Connections per process: requests beyond it wait (up to the timeout) for a free one.
MAX_CONNECTIONS = 32


def digest(*parts: str) -> str:
    """A fixed-length, one-way name for visitor-supplied values (states, jtis, subjects)."""
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:40]


@dataclass(frozen=True)
class StoreStatus:
    ready: bool
    detail: str


class RedisClient:
    """A ``redis.asyncio`` client over a bounded pool; one per process, shared by every store."""

    def __init__(self, settings: SessionSettings) -> None:
        assert settings.redis_url is not None
        self.timeout = settings.redis_timeout
        password = settings.redis_password.get_secret_value() if settings.redis_password else None
        url = settings.redis_url.get_secret_value()
        options: dict[str, Any] = {
            "socket_timeout": self.timeout,
            "socket_connect_timeout": self.timeout,
            # One immediate retry on a fresh connection: after a Redis restart the pooled
            # connections are dead, and the first call on each would fail otherwise.
            "retry": Retry(NoBackoff(), 1),
            "retry_on_error": [ConnectionError],
            "health_check_interval": 30,
            **({"password": password} if password is not None else {}),
        }
        self._sentinel: Sentinel | None = None
        if url.startswith(f"{SENTINEL_SCHEME}://"):
            # Sentinel names the current primary, and names the new one after a failover;
            # its pool asks again whenever a connection to the old primary fails.
            target = parse_sentinel_url(url)
            self._sentinel = Sentinel(  # type: ignore[no-untyped-call]
                list(target.sentinels),
                sentinel_kwargs={
                    "socket_timeout": self.timeout,
                    "socket_connect_timeout": self.timeout,
                },
            )
            self.redis: Redis = self._sentinel.master_for(
                target.primary, db=target.db, max_connections=MAX_CONNECTIONS, **options
            )
        else:
            pool = BlockingConnectionPool.from_url(
                url, max_connections=MAX_CONNECTIONS, timeout=self.timeout, **options
            )
            self.redis = Redis(connection_pool=pool)

    @staticmethod
    def key(kind: str, *parts: str) -> str:
        return ":".join((NAMESPACE, kind, *parts))

    async def run(self, what: str, call: Callable[[Redis], Awaitable[T]]) -> T:
        """One Redis operation under one deadline; any failure is ``StoreUnavailable``."""
        try:
            # A retry may take a second timeout; nothing waits longer than that.
            async with asyncio.timeout(self.timeout * 2 + 0.5):
                return await call(self.redis)
        except (RedisError, OSError, TimeoutError) as exc:
            raise StoreUnavailable(f"redis: {what} failed: {type(exc).__name__}") from None

    async def status(self) -> StoreStatus:
        try:
            await self.run("ping", lambda redis: redis.ping())
        except StoreUnavailable as exc:
            return StoreStatus(False, exc.detail)
        return StoreStatus(True, "ready")

    async def aclose(self) -> None:
        await self.redis.aclose()
        await self.redis.connection_pool.disconnect()
        for sentinel in self._sentinel.sentinels if self._sentinel else ():
            await sentinel.aclose()
