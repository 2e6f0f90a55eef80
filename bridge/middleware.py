"""ASGI middleware: security headers on every answer, request ids, and no tracebacks ever.

Pure ASGI (no BaseHTTPMiddleware) so they add nothing to a request's latency
beyond the headers they write.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import secrets
from collections.abc import Awaitable, Callable

from starlette.datastructures import MutableHeaders
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


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp, *, https: bool) -> None:
        self.app = app
        self.https = https

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("Referrer-Policy", "no-referrer")
                headers.setdefault("X-Frame-Options", "DENY")
                headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
                headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
                headers.setdefault("Content-Security-Policy", DEFAULT_CSP)
                if self.https:
                    headers.setdefault("Strict-Transport-Security", "max-age=31536000")
            await send(message)

        await self.app(scope, receive, send_with_headers)


class RequestContextMiddleware:
    """Request ids (trusted from proxies only), forwarded headers, and a last-resort error page."""

    def __init__(
        self, app: ASGIApp, *, trusted_proxies: tuple[str, ...], on_error: ErrorRenderer
    ) -> None:
        self.networks = [ipaddress.ip_network(p, strict=False) for p in trusted_proxies]
        self.app: ASGIApp = app
        if trusted_proxies:
            proxied = ProxyHeadersMiddleware(app, list(trusted_proxies))  # type: ignore[arg-type]
            self.app = proxied  # type: ignore[assignment]
        self.on_error = on_error

    def _trusted(self, scope: Scope) -> bool:
        client = scope.get("client")
        if not client or not self.networks:
            return False
        try:
            address = ipaddress.ip_address(client[0])
        except ValueError:
            return False
        return any(address in network for network in self.networks)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = MutableHeaders(scope=scope).get("x-request-id", "")
        rid = (
            incoming
            if self._trusted(scope) and REQUEST_ID.fullmatch(incoming)
            else secrets.token_hex(8)
        )
        token = request_id.set(rid)
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                MutableHeaders(scope=message)["X-Request-ID"] = rid
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            if started:
                log.error(
                    "internal_error after the answer started (%s)", type(exc).__name__, exc_info=exc
                )
                return
            response = await self.on_error(Request(scope, receive), exc)
            await response(scope, receive, send_with_id)
        finally:
            request_id.reset(token)
