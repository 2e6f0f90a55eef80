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
from collections.abc import Awaitable, Callable

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
HSTS = ("Strict-Transport-Security", "max-age=31536000")


class EdgeMiddleware:
    """The one middleware in front of the app: request ids (trusted from proxies only),
    forwarded headers, security headers on every answer, and a last-resort error page.

    Pure ASGI, and the headers are encoded once: a request pays for a lookup of the
    names the route already set and one list extension.
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
        if trusted_proxies:
            proxied = ProxyHeadersMiddleware(app, list(trusted_proxies))  # type: ignore[arg-type]
            self.app = proxied  # type: ignore[assignment]
        self.on_error = on_error
        pairs = (*SECURITY_HEADERS, HSTS) if https else SECURITY_HEADERS
        self._headers = [(name.lower().encode(), value.encode()) for name, value in pairs]

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

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = self._request_id(scope)
        token = request_id.set(rid)
        started = False
        prepared = self._headers

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                headers.extend(h for h in prepared if h[0] not in present)
                headers.append((b"x-request-id", rid.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception as exc:
            if started:
                log.error(
                    "internal_error after the answer started (%s)", type(exc).__name__, exc_info=exc
                )
                return
            response = await self.on_error(Request(scope, receive), exc)
            await response(scope, receive, send_with_headers)
        finally:
            request_id.reset(token)
