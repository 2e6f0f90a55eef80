"""One-time handles: short-lived, single-use references bound to the origin that may redeem them.

A handle stands in for something the bridge will not put in a URL (a sign-in's result, a
site page to return to after logout). It carries nothing itself: it names an entry in a
store, and redeeming it removes the entry. The store is an interface so that several
workers can share one (Redis) later; ``MemoryHandleStore`` serves one process.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Protocol

#: Handles are 256-bit random, URL-safe: 43 characters.
HANDLE_LENGTH = 43


class HandleStore(Protocol):
    async def issue(self, payload: dict[str, Any], origin: str, ttl: float) -> str:
        """Store ``payload`` for ``ttl`` seconds; only ``origin`` may redeem it, once."""

    async def redeem(self, handle: str, origin: str) -> dict[str, Any] | None:
        """The payload, the first time and only for the origin it was issued to; else None.

        A handle presented by the wrong origin is spent all the same: whoever leaked it
        does not get a second try.
        """


@dataclass(frozen=True)
class _Entry:
    payload: dict[str, Any]
    origin: str
    expires: float


class MemoryHandleStore:
    """Handles held in this process, oldest dropped first beyond ``limit``."""

    def __init__(self, limit: int = 100_000) -> None:
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._limit = limit
        self._lock = asyncio.Lock()

    def _expire(self, now: float) -> None:
        # Oldest first: a handle's lifetime is short and near-uniform, so this stays cheap.
        while self._entries and next(iter(self._entries.values())).expires <= now:
            self._entries.popitem(last=False)

    async def issue(self, payload: dict[str, Any], origin: str, ttl: float) -> str:
        handle = secrets.token_urlsafe(32)
        async with self._lock:
            now = time.monotonic()
            self._expire(now)
            self._entries[handle] = _Entry(dict(payload), origin, now + ttl)
            while len(self._entries) > self._limit:
                self._entries.popitem(last=False)
        return handle

    async def redeem(self, handle: str, origin: str) -> dict[str, Any] | None:
        async with self._lock:
            entry = self._entries.pop(handle, None)
        if entry is None or entry.expires <= time.monotonic() or entry.origin != origin:
            return None
        return entry.payload


def looks_like_handle(value: object) -> bool:
    return (
        isinstance(value, str)
        and len(value) == HANDLE_LENGTH
        and all(c.isascii() and (c.isalnum() or c in "-_") for c in value)
    )


__all__ = ["HANDLE_LENGTH", "HandleStore", "MemoryHandleStore", "looks_like_handle"]
