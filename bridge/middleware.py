"""The ASGI middleware in front of everything: security headers on every answer, request
ids, and no tracebacks ever.

Pure ASGI (no BaseHTTPMiddleware), one layer, so it adds nothing to a request's latency
beyond the headers it writes.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import secrets
from collections.abc import Awaitable, Callable, Iterable
from contextvars import Token

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from bridge.logs import request_id

log = logging.getLogger("bridge.web")

DEFAULT_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")

ErrorRenderer = Callable[[Request, Exception], Awaitable[Response]]


#: Every answer carries these unless the route set its own (the widget page's CSP).
SECURITY_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Permissions-Policy", "camera=(), microphone=(), geolocation=()"),
    ("Content-Security-Policy", DEFAULT_CSP),
)
#: A JSON answer is data, never a page: a policy that lets it load, submit or frame
#: nothing, and without the two headers only documents read (COOP and
#: Permissions-Policy). Shorter as well, on every page load's ``POST /auth``.
JSON_CSP = "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
JSON_SECURITY_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
    ("Content-Security-Policy", JSON_CSP),
)
HSTS = ("Strict-Transport-Security", "max-age=31536000")

RawHeaders = list[tuple[bytes, bytes]]


async def _forwarded_only(scope: Scope, receive: Receive, send: Send) -> None:
    """What ProxyHeadersMiddleware hands the scope to: it is rewritten by then."""


class EdgeMiddleware:
    """The one middleware in front of the app: request ids (trusted from proxies only),
    forwarded headers, security headers on every answer, and a last-resort error page.

    Pure ASGI, and the headers are encoded once: a request pays for a lookup of the
    names the route already set and one list extension. Its steps are methods of their
    own (:meth:`enter`, :meth:`forward`, :meth:`answer_headers`, :meth:`fail`), which
    ``POST /auth``'s front (``bridge.web.AuthFront``) takes in the same order.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        https: bool,
        trusted_proxies: tuple[str, ...],
        on_error: ErrorRenderer,
    ) -> None:
        self.networks = [ipaddress.ip_network(p, strict=False) for p in trusted_proxies]
        self.app: ASGIApp = app
        #: uvicorn's own reading of X-Forwarded-For and -Proto, from trusted proxies only.
        self.proxies = (
            ProxyHeadersMiddleware(_forwarded_only, list(trusted_proxies))  # type: ignore[arg-type]
            if trusted_proxies
            else None
        )
        self.on_error = on_error
        extra = (HSTS,) if https else ()
        self._headers = encoded_headers((*SECURITY_HEADERS, *extra))
        self._json_headers = encoded_headers((*JSON_SECURITY_HEADERS, *extra))
        self._names = frozenset(name for name, _ in self._headers)

    def _trusted(self, scope: Scope) -> bool:
        client = scope.get("client")
        if not client or not self.networks:
            return False
        try:
            address = ipaddress.ip_address(client[0])
        except ValueError:
            return False
        return any(address in network for network in self.networks)

    def _request_id(self, scope: Scope) -> str:
        if self.networks and self._trusted(scope):
            for name, value in scope["headers"]:
                if name == b"x-request-id":
                    incoming: str = value.decode("latin-1")
                    if REQUEST_ID.fullmatch(incoming):
                        return incoming
                    break
        return secrets.token_hex(8)

    def enter(self, scope: Scope) -> tuple[str, Token[str]]:
        """The request's id, set for its log records until ``request_id.reset(token)``."""
        rid = self._request_id(scope)
        return rid, request_id.set(rid)

    async def forward(self, scope: Scope) -> None:
        """The client and scheme a trusted proxy forwarded, into the scope (after ``enter``:
        the request id is trusted by the address the request came from)."""
        if self.proxies is not None:
            await self.proxies(scope, _no_receive, _no_send)  # type: ignore[arg-type]

    def answer_headers(self, headers: Iterable[tuple[bytes, bytes]], rid: str) -> RawHeaders:
        """An answer's headers with the security headers the route did not set, and the id."""
        out = list(headers)
        present = set()
        is_json = False
        for name, value in out:
            name = name.lower()
            present.add(name)
            if name == b"content-type" and value.startswith(b"application/json"):
                is_json = True
        prepared = self._json_headers if is_json else self._headers
        if present.isdisjoint(self._names):  # the usual case: the route set none of them
            out += prepared
        else:
            out += [h for h in prepared if h[0] not in present]
        out.append((b"x-request-id", rid.encode()))
        return out

    async def fail(
        self, scope: Scope, receive: Receive, send: Send, rid: str, exc: Exception, started: bool
    ) -> None:
        """The answer to an exception: the error page, or a log line once it is too late."""
        if started:
            log.error(
                "internal_error after the answer started (%s)", type(exc).__name__, exc_info=exc
            )
            return
        response = await self.on_error(Request(scope, receive), exc)
        # In place: the response sends this list, and its ``headers`` view reads it too.
        response.raw_headers[:] = self.answer_headers(response.raw_headers, rid)
        await response(scope, receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid, token = self.enter(scope)
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = self.answer_headers(message.get("headers", ()), rid)
            await send(message)

        try:
            await self.forward(scope)
            await self.app(scope, receive, send_with_headers)
        except Exception as exc:
            await self.fail(scope, receive, send, rid, exc, started)
        finally:
            request_id.reset(token)


def encoded_headers(pairs: Iterable[tuple[str, str]]) -> RawHeaders:
    """Header names and values as ASGI sends them: lower-case names, encoded."""
    return [(name.lower().encode(), value.encode()) for name, value in pairs]


async def _no_receive() -> Message:
    raise RuntimeError("the proxy headers step reads no body")


async def _no_send(message: Message) -> None:
    raise RuntimeError("the proxy headers step sends nothing")
