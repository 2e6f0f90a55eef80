"""One-time handles: short-lived, single-use references bound to the origin that may redeem them.

A handle stands in for something the bridge will not put in a URL (a sign-in's result, a
site page to return to after logout). It carries nothing itself: it names an entry in a
store, and redeeming it removes the entry. ``MemoryHandleStore`` serves one process;
``RedisHandleStore`` every worker and instance that shares the Redis, since a sign-in may
end on one of them and be redeemed on another.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from bridge.redis_client import RedisClient, digest

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


class RedisHandleStore:
    """Handles shared through Redis: ``SET PX`` to issue, atomic ``GETDEL`` to redeem.

    Redis learns neither a handle nor what it stands for: the key is a one-way digest of
    the handle, and the entry is sealed (AES-GCM) under a key derived from the handle, with
    the origin allowed to redeem it bound in. Whoever reads Redis cannot redeem or read an
    entry; a handle presented by another origin opens nothing, and is spent all the same.
    """

    _NONCE_BYTES = 12

    def __init__(self, client: RedisClient) -> None:
        self._client = client

    def _key(self, handle: str) -> str:
        return self._client.key("handle", digest(handle))

    @staticmethod
    def _aead(handle: str) -> AESGCM:
        hkdf = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"tiledesk-bridge handle v1"
        )
        return AESGCM(hkdf.derive(handle.encode()))

    async def issue(self, payload: dict[str, Any], origin: str, ttl: float) -> str:
        handle = secrets.token_urlsafe(32)
        milliseconds = int(ttl * 1000)
        if milliseconds <= 0:
            return handle  # already expired: nothing to keep
        key = self._key(handle)
        nonce = secrets.token_bytes(self._NONCE_BYTES)
        plaintext = json.dumps(payload, separators=(",", ":")).encode()
        sealed = nonce + self._aead(handle).encrypt(nonce, plaintext, f"{key}|{origin}".encode())
        await self._client.run(
            "keep a one-time handle", lambda redis: redis.set(key, sealed, px=milliseconds)
        )
        return handle

    async def redeem(self, handle: str, origin: str) -> dict[str, Any] | None:
        key = self._key(handle)
        sealed = await self._client.run("redeem a one-time handle", lambda redis: redis.getdel(key))
        if not isinstance(sealed, bytes) or len(sealed) <= self._NONCE_BYTES:
            return None
        nonce, ciphertext = sealed[: self._NONCE_BYTES], sealed[self._NONCE_BYTES :]
        try:
            plaintext = self._aead(handle).decrypt(nonce, ciphertext, f"{key}|{origin}".encode())
            payload = json.loads(plaintext)
        except (InvalidTag, ValueError):
            return None
        return payload if isinstance(payload, dict) else None


def looks_like_handle(value: object) -> bool:
    return (
        isinstance(value, str)
        and len(value) == HANDLE_LENGTH
        and all(c.isascii() and (c.isalnum() or c in "-_") for c in value)
    )


__all__ = [
    "HANDLE_LENGTH",
    "HandleStore",
    "MemoryHandleStore",
    "RedisHandleStore",
    "looks_like_handle",
]
