"""The session middleware: the session a request's cookie names, under the bridge's own rules.

It replaces Starlette's SessionMiddleware, whose cookie handling changed between
versions (0.47 re-issues the cookie with a fresh ``Max-Age`` on every answer, so a
session never ended while the visitor came back). Here the lifetime is
``bridge.sessions.Lifetime``, enforced on every request, and the cookie is written
only when the session changed, was opened with a previous secret, or the idle
deadline moved. Pure ASGI: it adds nothing to a request but the work it does.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import orjson
from starlette.datastructures import MutableHeaders
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bridge.session_store import (
    Clock,
    CookieSealer,
    CookieStore,
    Loaded,
    SessionStore,
    SessionTooLarge,
)
from bridge.sessions import FLOW_TTL, Lifetime
from bridge.settings import SessionSettings

log = logging.getLogger("bridge.sessions")

#: Browsers keep a cookie of up to 4096 bytes, name, value and attributes together.
MAX_SET_COOKIE = 4000
#: Cookies of the session's name tried per request: ours, and a few tossed ones.
MAX_SAME_NAME_COOKIES = 4


class SessionMiddleware:
    """Puts the session in ``scope["session"]`` (a dict) and keeps it in ``store``."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        settings: SessionSettings,
        https_only: bool,
        store: SessionStore | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.app = app
        self.cookie_name = settings.cookie_name
        self.lifetime = Lifetime(settings.max_age, settings.idle_timeout)
        self._clock = clock
        self._attributes = _attributes(settings, https_only)
        room = cookie_room(settings, https_only)
        self.store: SessionStore = store or CookieStore(
            CookieSealer(
                settings.secret.get_secret_value(),
                [s.get_secret_value() for s in settings.previous_secrets],
                cookie_name=self.cookie_name,
            ),
            max_value=room,
            clock=self._now,
        )

    def _now(self) -> float:
        return time.time() if self._clock is None else self._clock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        now = self._now()
        cookie, loaded = await self._load(scope)
        # A copy of the top level: the store reads only top-level keys of what it loaded
        # (``sid``, ``u``, ``p``, ``sub``), and a route replaces or removes those, never
        # edits them in place; the comparison below is by fingerprint, taken now.
        session: dict[str, Any] = dict(loaded.data) if loaded else {}
        before = _fingerprint(session)
        self.lifetime.enforce(session, now)
        self.lifetime.touch(session, now)
        scope["session"] = session

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                header = await self._commit(scope["session"], cookie, loaded, before, now)
                if header is not None:
                    MutableHeaders(scope=message).append("Set-Cookie", header)
            await send(message)

        await self.app(scope, receive, send_with_cookie)

    async def _load(self, scope: Scope) -> tuple[str | None, Loaded | None]:
        """The cookie that names a session, and that session; else the cookie to delete.

        Every cookie of our name is tried, in the order sent: a sibling sub-domain can set
        one more for the parent domain (cookie tossing), and it must not hide ours.
        """
        values = [
            value
            for header_name, header in scope["headers"]
            if header_name == b"cookie"
            for chunk in header.decode("latin-1").split(";")
            # Only a chunk of our name goes through the parser: one of many, usually.
            if self.cookie_name in chunk
            for name, value in cookie_parser(chunk).items()
            if name == self.cookie_name and value
        ]
        for value in values[:MAX_SAME_NAME_COOKIES]:
            loaded = await self.store.load(value)
            if loaded is not None:
                return value, loaded
        return (values[0] if values else None), None

    async def _commit(
        self,
        session: dict[str, Any],
        cookie: str | None,
        loaded: Loaded | None,
        before: bytes,
        now: float,
    ) -> str | None:
        """The Set-Cookie this answer needs, if any: a new cookie, a deletion, or nothing."""
        if session:
            if loaded is not None and not loaded.stale and _fingerprint(session) == before:
                return None
            ttl = self.lifetime.ttl(session, now)
            renew = loaded is None or session.get("sid") != loaded.data.get("sid")
            try:
                if ttl > 0:
                    value = await self.store.save(session, ttl=ttl, previous=loaded, renew=renew)
                    return f"{self.cookie_name}={value}; Max-Age={ttl}{self._attributes}"
            except SessionTooLarge as exc:
                log.warning("session not kept, the visitor stays signed out: %s", exc)
        if loaded is not None:
            await self.store.clear(loaded)
        if cookie is None:
            return None
        return f"{self.cookie_name}=; Max-Age=0{self._attributes}"


def _attributes(settings: SessionSettings, https_only: bool) -> str:
    secure = "; Secure" if https_only else ""
    return f"; Path=/; HttpOnly; SameSite={settings.same_site.capitalize()}{secure}"


def cookie_room(settings: SessionSettings, https_only: bool) -> int:
    """The longest cookie value that fits, with the name and attributes, in what browsers keep."""
    longest_max_age = f"; Max-Age={max(settings.max_age, FLOW_TTL)}"
    attributes = _attributes(settings, https_only)
    return MAX_SET_COOKIE - len(f"{settings.cookie_name}={longest_max_age}{attributes}")


def _fingerprint(session: dict[str, Any]) -> bytes:
    """What the session holds, canonically: equal before and after means nothing changed.

    orjson, several times faster than ``json`` here, and this runs twice per request;
    ``json`` for what orjson refuses (an integer past 64 bits, which a claim can be).
    """
    try:
        return orjson.dumps(session, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:
        return json.dumps(session, sort_keys=True, separators=(",", ":")).encode()
