"""The session middleware: the session a request's cookie names, under the bridge's own rules.

It replaces Starlette's SessionMiddleware, whose cookie handling changed between
versions (0.47 re-issues the cookie with a fresh ``Max-Age`` on every answer, so a
session never ended while the visitor came back). Here the lifetime is
``bridge.sessions.Lifetime``, enforced on every request, and the cookie is written
only when the session changed, was opened with a previous secret, or the idle
deadline moved. Pure ASGI: it adds nothing to a request but the work it does.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.requests import HTTPConnection
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
        self._attributes = f"; Path=/; HttpOnly; SameSite={settings.same_site.capitalize()}"
        if https_only:
            self._attributes += "; Secure"
        longest_max_age = f"; Max-Age={max(settings.max_age, FLOW_TTL)}"
        room = MAX_SET_COOKIE - len(f"{self.cookie_name}={longest_max_age}{self._attributes}")
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
        cookie = HTTPConnection(scope).cookies.get(self.cookie_name) or None
        loaded = await self.store.load(cookie) if cookie else None
        # A deep copy: what the store loaded stays as it was, for it to compare or overwrite.
        session: dict[str, Any] = copy.deepcopy(loaded.data) if loaded else {}
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

    async def _commit(
        self,
        session: dict[str, Any],
        cookie: str | None,
        loaded: Loaded | None,
        before: str,
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


def _fingerprint(session: dict[str, Any]) -> str:
    return json.dumps(session, sort_keys=True, separators=(",", ":"))
