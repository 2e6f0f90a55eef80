"""The session middleware: the session a request's cookie names, under the bridge's own rules.

It replaces Starlette's SessionMiddleware, whose cookie handling changed between
versions (0.47 re-issues the cookie with a fresh ``Max-Age`` on every answer, so a
session never ended while the visitor came back). Here the lifetime is
``bridge.sessions.Lifetime``, enforced on every request, and the cookie is written
only when the session changed, was opened with a previous secret, or the idle
deadline moved. Pure ASGI: it adds nothing to a request but the work it does.

The ID token kept for logout's ``id_token_hint`` (the session's ``"h"``) is sealed in a
cookie of its own whose Path is ``/logout``, bound to the session's ``sid``: browsers
send it to ``POST /logout`` alone, so the session cookie every other request carries and
opens (every page load's ``POST /auth``) holds no ID token.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import orjson
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bridge.middleware import RawHeaders
from bridge.session_store import (
    Clock,
    CookieSealer,
    CookieStore,
    Loaded,
    SessionStore,
    SessionTooLarge,
)
from bridge.sessions import FLOW_TTL, HINT_KEY, Lifetime
from bridge.settings import SessionSettings

log = logging.getLogger("bridge.sessions")

#: Browsers keep a cookie of up to 4096 bytes, name, value and attributes together.
MAX_SET_COOKIE = 4000
#: Cookies of the session's name tried per request: ours, and a few tossed ones.
MAX_SAME_NAME_COOKIES = 4
#: The hint cookie's Path: browsers send it to this route (and paths under it) alone,
#: and it is read on this route alone.
HINT_PATH = "/logout"


#: What :meth:`SessionMiddleware.open` found: the cookie, the session it held, its
#: fingerprint, the time, and the logout hint its own cookie brought.
Opened = tuple[str | None, Loaded | None, bytes, float, str | None]


class SessionMiddleware:
    """Puts the session in ``scope["session"]`` (a dict) and keeps it in ``store``.

    Its two steps, :meth:`open` and :meth:`set_cookies`, are methods of their own, which
    ``POST /auth``'s front (``bridge.web.AuthFront``) takes in the same order.
    """

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
        secret = settings.secret.get_secret_value()
        previous = [s.get_secret_value() for s in settings.previous_secrets]
        self.store: SessionStore = store or CookieStore(
            CookieSealer(secret, previous, cookie_name=self.cookie_name),
            max_value=room,
            clock=self._now,
        )
        self.hint_cookie_name = f"{self.cookie_name}_logout"
        self._hint_sealer = CookieSealer(secret, previous, cookie_name=self.hint_cookie_name)
        self._hint_attributes = _attributes(settings, https_only, path=HINT_PATH)
        #: The Set-Cookie headers that delete the two cookies, as browsers match them.
        self._deletion = f"{self.cookie_name}=; Max-Age=0{self._attributes}"
        self._hint_deletion = f"{self.hint_cookie_name}=; Max-Age=0{self._hint_attributes}"
        self._hint_room = MAX_SET_COOKIE - len(
            f"{self.hint_cookie_name}=; Max-Age={settings.max_age}{self._hint_attributes}"
        )

    def _now(self) -> float:
        return time.time() if self._clock is None else self._clock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        opened = await self.open(scope)

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                cookies = await self.set_cookies(scope, opened)
                if cookies:
                    message["headers"] = [*message.get("headers", ()), *cookies]
            await send(message)

        await self.app(scope, receive, send_with_cookie)

    async def open(self, scope: Scope) -> Opened:
        """The session the request's cookie names, under the lifetime's rules, into
        ``scope["session"]``; what :meth:`set_cookies` needs at the answer."""
        now = self._now()
        # Every cookie of our name is tried, in the order sent: a sibling sub-domain can set
        # one more for the parent domain (cookie tossing), and it must not hide ours. The
        # first that names a session is the one; else the first is the cookie to delete.
        values = _cookie_values(scope, self.cookie_name)
        cookie, loaded = (values[0] if values else None), None
        for value in values[:MAX_SAME_NAME_COOKIES]:
            loaded = await self.store.load(value)
            if loaded is not None:
                cookie = value
                break
        # A copy of the top level: the store reads only top-level keys of what it loaded
        # (``sid``, ``u``, ``p``, ``sub``), and a route replaces or removes those, never
        # edits them in place; the comparison below is by fingerprint, taken now.
        session: dict[str, Any] = dict(loaded.data) if loaded else {}
        hint = None
        if loaded is not None and scope["path"] == HINT_PATH and "u" in session:
            hint = self._load_hint(scope, session.get("sid"))
            if hint is not None:
                session[HINT_KEY] = hint
        before = _fingerprint(session)
        self.lifetime.apply(session, now)
        scope["session"] = session
        return cookie, loaded, before, now, hint

    def _load_hint(self, scope: Scope, sid: Any) -> str | None:
        """The ID token sealed for the session ``sid`` names, if its cookie came along."""
        for value in _cookie_values(scope, self.hint_cookie_name)[:MAX_SAME_NAME_COOKIES]:
            opened = self._hint_sealer.open(value)
            if opened is None:
                continue
            try:
                data = orjson.loads(opened[0])
            except orjson.JSONDecodeError:
                continue
            if isinstance(data, dict) and isinstance(sid, str) and data.get("sid") == sid:
                hint = data.get(HINT_KEY)
                return hint if isinstance(hint, str) else None
        return None

    def _hint_cookie(self, session: dict[str, Any], hint: str, now: float) -> str | None:
        """The hint's Set-Cookie, living as long as the sign-in can; None if it cannot fit."""
        sid, max_age = session.get("sid"), self.lifetime.sign_in_ttl(session, now)
        if not isinstance(sid, str) or not max_age:
            return None
        value = self._hint_sealer.seal(orjson.dumps({"sid": sid, HINT_KEY: hint}))
        if len(value) > self._hint_room:
            return None
        return f"{self.hint_cookie_name}={value}; Max-Age={max_age}{self._hint_attributes}"

    async def set_cookies(self, scope: Scope, opened: Opened) -> RawHeaders:
        """The Set-Cookie headers the answer needs for ``scope["session"]`` as it is now:
        new cookies, deletions, or none, encoded as ASGI sends them. ``opened`` is what
        :meth:`open` returned, with the hint its own cookie brought to this request, if any.
        """
        session: dict[str, Any] = scope["session"]
        cookie, loaded, before, now, hint_loaded = opened
        if session:
            if (
                loaded is not None
                and not loaded.stale
                and HINT_KEY not in loaded.data  # sealed before the hint had its cookie
                and _fingerprint(session) == before
            ):
                return []
            ttl = self.lifetime.ttl(session, now)
            renew = loaded is None or session.get("sid") != loaded.data.get("sid")
            hint = session.get(HINT_KEY)
            data = {k: v for k, v in session.items() if k != HINT_KEY}
            try:
                if ttl > 0:
                    value = await self.store.save(data, ttl=ttl, previous=loaded, renew=renew)
                    headers = [f"{self.cookie_name}={value}; Max-Age={ttl}{self._attributes}"]
                    if isinstance(hint, str) and hint != hint_loaded:
                        written = self._hint_cookie(session, hint, now)
                        headers.append(written or self._hint_deletion)
                    elif renew and hint is None:  # a new session: no other session's hint
                        headers.append(self._hint_deletion)
                    return _raw(headers)
            except SessionTooLarge as exc:
                log.warning("session not kept, the visitor stays signed out: %s", exc)
        if loaded is not None:
            await self.store.clear(loaded)
        if cookie is None:
            return []
        return _raw([self._deletion, self._hint_deletion])


def _raw(set_cookies: list[str]) -> RawHeaders:
    """Set-Cookie values as ASGI headers (latin-1, as Starlette encodes them)."""
    return [(b"set-cookie", value.encode("latin-1")) for value in set_cookies]


def _attributes(settings: SessionSettings, https_only: bool, path: str = "/") -> str:
    secure = "; Secure" if https_only else ""
    return f"; Path={path}; HttpOnly; SameSite={settings.same_site.capitalize()}{secure}"


def _cookie_values(scope: Scope, cookie_name: str) -> list[str]:
    """The values of every cookie of this name the request sent, in the order sent."""
    return [
        value
        for header_name, header in scope["headers"]
        if header_name == b"cookie"
        for chunk in header.decode("latin-1").split(";")
        # Only a chunk of this name goes through the parser: one of many, usually.
        if cookie_name in chunk
        for name, value in cookie_parser(chunk).items()
        if name == cookie_name and value
    ]


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
