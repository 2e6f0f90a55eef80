"""Sessions in Redis behind an opaque ticket, after oauth2-proxy's Redis session store.

The cookie holds only a ticket, sealed with the session secret like any session
cookie: a random 128-bit id that names the Redis key, and a per-session random
128-bit secret that encrypts (AES-GCM) the session stored there. Redis alone
therefore reveals no session, and a cookie alone holds none. The key expires with
the session's remaining lifetime; signing out deletes it, so a copied cookie dies on
every instance at once.

A per-person index (provider + the IdP's ``sub``; provider + the IdP's ``sid``) names
the sessions of one person, so a back-channel logout can end all of them.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bridge.redis_client import RedisClient, digest
from bridge.session_store import CookieSealer, Loaded, SessionStore

_ID_BYTES = 16
_SECRET_BYTES = 16
_NONCE_BYTES = 12


@dataclass
class Ticket:
    """What the cookie carries: the key's id and the session's own encryption key."""

    id: str
    secret: bytes

    @classmethod
    def new(cls) -> Ticket:
        return cls(_b64(secrets.token_bytes(_ID_BYTES)), secrets.token_bytes(_SECRET_BYTES))

    def encode(self) -> bytes:
        return f"{self.id}.{_b64(self.secret)}".encode()

    @classmethod
    def decode(cls, raw: bytes) -> Ticket | None:
        ticket_id, dot, secret = raw.decode("ascii", "replace").partition(".")
        key = _unb64(secret)
        if not dot or _unb64(ticket_id) is None or key is None or len(key) != _SECRET_BYTES:
            return None
        return cls(ticket_id, key)


@dataclass
class RedisLoaded(Loaded):
    ticket: Ticket | None = None


class RedisSessionStore(SessionStore):
    """The session middleware's store when ``[session] store = "redis"``."""

    def __init__(self, client: RedisClient, sealer: CookieSealer, *, max_age: int) -> None:
        self._client = client
        self._sealer = sealer
        self._max_age = max_age

    def _key(self, ticket_id: str) -> str:
        return self._client.key("session", ticket_id)

    def _index_keys(self, data: Mapping[str, Any]) -> list[str]:
        """The per-person index entries a signed-in session belongs to."""
        provider = data.get("p")
        if "u" not in data or not isinstance(provider, str):
            return []
        keys = []
        for field, kind in (("sub", "by-sub"), ("idp_sid", "by-sid")):
            value = data.get(field)
            if isinstance(value, str):
                keys.append(self._client.key(kind, digest(provider, value)))
        return keys

    async def load(self, cookie: str) -> Loaded | None:
        opened = self._sealer.open(cookie)
        if opened is None:
            return None
        raw, stale = opened
        ticket = Ticket.decode(raw)
        if ticket is None:
            return None
        key = self._key(ticket.id)
        blob = await self._client.run("load a session", lambda redis: redis.get(key))
        if not isinstance(blob, bytes) or len(blob) <= _NONCE_BYTES:
            return None
        try:
            plaintext = AESGCM(ticket.secret).decrypt(
                blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], key.encode()
            )
            data = json.loads(plaintext)
        except (InvalidTag, ValueError):
            return None
        if not isinstance(data, dict):
            return None
        return RedisLoaded(data=data, stale=stale, ticket=ticket)

    async def save(
        self, data: Mapping[str, Any], *, ttl: int, previous: Loaded | None, renew: bool
    ) -> str:
        old = previous.ticket if isinstance(previous, RedisLoaded) else None
        ticket = Ticket.new() if renew or old is None else old
        key = self._key(ticket.id)
        nonce = secrets.token_bytes(_NONCE_BYTES)
        plaintext = json.dumps(data, separators=(",", ":")).encode()
        blob = nonce + AESGCM(ticket.secret).encrypt(nonce, plaintext, key.encode())
        index = self._index_keys(data) if ticket is not old else []

        async def write(redis: Any) -> None:
            async with redis.pipeline(transaction=True) as pipe:
                # An existing session is only overwritten while it exists: a request that
                # loaded it before a logout ended it must not bring it back.
                pipe.set(key, blob, ex=ttl, xx=ticket is old)
                for entry in index:
                    # The index outlives no session by more than one lifetime.
                    pipe.sadd(entry, ticket.id)
                    pipe.expire(entry, self._max_age)
                if old is not None and old is not ticket:
                    self._forget(pipe, old.id, previous.data if previous else {})
                await pipe.execute()

        await self._client.run("save a session", write)
        return self._sealer.seal(ticket.encode())

    async def clear(self, previous: Loaded) -> None:
        if not isinstance(previous, RedisLoaded) or previous.ticket is None:
            return
        ticket_id = previous.ticket.id

        async def delete(redis: Any) -> None:
            async with redis.pipeline(transaction=True) as pipe:
                self._forget(pipe, ticket_id, previous.data)
                await pipe.execute()

        await self._client.run("delete a session", delete)

    def _forget(self, pipe: Any, ticket_id: str, data: Mapping[str, Any]) -> None:
        pipe.delete(self._key(ticket_id))
        for entry in self._index_keys(data):
            pipe.srem(entry, ticket_id)

    async def end_sessions(self, provider: str, *, sub: str | None, sid: str | None) -> int:
        """End every session of this IdP session (``sid``) or, without one, of this person."""
        entry = (
            self._client.key("by-sid", digest(provider, sid))
            if sid is not None
            else self._client.key("by-sub", digest(provider, sub or ""))
        )

        async def end(redis: Any) -> int:
            members = await redis.smembers(entry)
            ids = sorted(m.decode() for m in members)
            async with redis.pipeline(transaction=True) as pipe:
                for ticket_id in ids:
                    pipe.delete(self._key(ticket_id))
                pipe.delete(entry)
                results = await pipe.execute()
            return sum(1 for deleted in results[: len(ids)] if deleted)

        return await self._client.run("end sessions", end)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes | None:
    try:
        raw = base64.urlsafe_b64decode(text.encode("ascii") + b"=" * (-len(text) % 4))
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return None
    return raw if _b64(raw) == text else None
