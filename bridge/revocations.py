"""Logout records for the cookie store: who was signed out by the IdP, and when.

A sealed cookie cannot be deleted from the server, so a logout is kept as a record
instead: the IdP session (``sid``) or the person (provider + ``sub``) signed out at a
time by a back-channel logout, or the bridge's own session id ended by ``POST
/logout`` (so a copy of the cookie dies with it). A session signed in at or before
that time is treated as signed out. Records live in this process's memory, or in
Redis when ``redis_url`` is set (then every instance honours them), for one session
lifetime.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from bridge.redis_client import RedisClient, digest
from bridge.session_store import Loaded, SessionStore


class Revocations(Protocol):
    async def revoke(self, provider: str, *, sub: str | None, sid: str | None, at: int) -> None:
        """Sign out, as of ``at``, the IdP session ``sid`` or (without a sid) the person ``sub``."""

    async def end_session(self, session_id: str, *, at: int) -> None:
        """Sign out, as of ``at``, the bridge session ``session_id`` (its own ``sid``)."""

    async def revoked_at(
        self, provider: str, *, sub: str | None, sid: str | None, session_id: str | None = None
    ) -> int | None:
        """The latest logout recorded for this session's ``sid``, ``sub`` or own id, if any."""


def _entries(
    provider: str, sub: str | None, sid: str | None, session_id: str | None = None
) -> list[str]:
    entries = [f"session:{digest(session_id)}"] if session_id is not None else []
    if sid is not None:
        entries.append(f"by-sid:{digest(provider, sid)}")
    if sub is not None:
        entries.append(f"by-sub:{digest(provider, sub)}")
    return entries


def _target(provider: str, sub: str | None, sid: str | None) -> str:
    """A token with a sid ends that IdP session; one with only a sub ends the person's."""
    return _entries(provider, None, sid)[0] if sid is not None else _entries(provider, sub, None)[0]


@dataclass
class MemoryRevocations:
    """One process's records, each kept for ``ttl`` seconds (the longest session)."""

    ttl: int
    limit: int = 100_000
    _records: dict[str, tuple[int, float]] = field(default_factory=dict)

    async def revoke(self, provider: str, *, sub: str | None, sid: str | None, at: int) -> None:
        self._record(_target(provider, sub, sid), at)

    async def end_session(self, session_id: str, *, at: int) -> None:
        self._record(f"session:{digest(session_id)}", at)

    def _record(self, entry: str, at: int) -> None:
        now = time.monotonic()
        if len(self._records) >= self.limit:
            self._records = {k: v for k, v in self._records.items() if v[1] > now}
        self._records[entry] = (at, now + self.ttl)

    async def revoked_at(
        self, provider: str, *, sub: str | None, sid: str | None, session_id: str | None = None
    ) -> int | None:
        if not self._records:
            return None  # the usual case: no logout heard, nothing to hash or look up
        now = time.monotonic()
        times = [
            record[0]
            for entry in _entries(provider, sub, sid, session_id)
            if (record := self._records.get(entry)) is not None and record[1] > now
        ]
        return max(times, default=None)


class RedisRevocations:
    """Records every instance shares, under hashed keys that expire with the longest session."""

    def __init__(self, client: RedisClient, ttl: int) -> None:
        self._client = client
        self._ttl = ttl

    async def revoke(self, provider: str, *, sub: str | None, sid: str | None, at: int) -> None:
        await self._record(_target(provider, sub, sid), at)

    async def end_session(self, session_id: str, *, at: int) -> None:
        await self._record(f"session:{digest(session_id)}", at)

    async def _record(self, entry: str, at: int) -> None:
        key = self._client.key("revoked", entry)
        await self._client.run(
            "record a logout", lambda redis: redis.set(key, str(at), ex=self._ttl)
        )

    async def revoked_at(
        self, provider: str, *, sub: str | None, sid: str | None, session_id: str | None = None
    ) -> int | None:
        entries = _entries(provider, sub, sid, session_id)
        keys = [self._client.key("revoked", e) for e in entries]
        if not keys:
            return None
        values = await self._client.run("read logouts", lambda redis: redis.mget(keys))
        times = [int(v) for v in values if v is not None]
        return max(times, default=None)


class RevocationCheckingStore(SessionStore):
    """A session store whose signed-in sessions the IdP may have ended since."""

    def __init__(self, inner: SessionStore, revocations: Revocations) -> None:
        self._inner = inner
        self._revocations = revocations

    async def load(self, cookie: str) -> Loaded | None:
        loaded = await self._inner.load(cookie)
        if loaded is None or "u" not in loaded.data:
            return loaded
        if await self._revoked(loaded.data):
            return None
        return loaded

    async def _revoked(self, data: Mapping[str, Any]) -> bool:
        provider, signed_in = data.get("p"), data.get("at")
        sub, sid, own = data.get("sub"), data.get("idp_sid"), data.get("sid")
        if not isinstance(provider, str) or not isinstance(signed_in, int | float):
            return True
        at = await self._revocations.revoked_at(
            provider,
            sub=sub if isinstance(sub, str) else None,
            sid=sid if isinstance(sid, str) else None,
            session_id=own if isinstance(own, str) else None,
        )
        return at is not None and signed_in <= at

    async def save(
        self, data: Mapping[str, Any], *, ttl: int, previous: Loaded | None, renew: bool
    ) -> str:
        return await self._inner.save(data, ttl=ttl, previous=previous, renew=renew)

    async def clear(self, previous: Loaded) -> None:
        """A signed-in session ended here (sign-out): any copy of its cookie ends too."""
        own = previous.data.get("sid")
        if "u" in previous.data and isinstance(own, str):
            await self._revocations.end_session(own, at=int(time.time()))
        await self._inner.clear(previous)
