"""A small, fast OpenID Provider for the benchmark, served by uvicorn on loopback.

It runs in its own process so its CPU is never counted as the bridge's. Every
authorization signs in a new user at once (no login page), the token endpoint
checks client authentication, PKCE and the redirect URI and signs a real RS256
ID token, and userinfo answers for the access token. ``--delay`` makes every
call answer after that many seconds (the slow-IdP case).

It counts the TCP connections the bridge opens to it: every distinct client
(address, port) seen on the endpoints only the bridge calls (discovery, keys,
token, userinfo). ``GET /stats`` reports them; ``POST /stats/reset`` starts over.

    python bench/idp.py --port 9100 --client-id bench --client-secret S [--delay 0.3]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import itertools
import secrets
import time
from collections import Counter
from typing import Any
from urllib.parse import urlencode

import uvicorn
from joserfc import jwt
from joserfc.jwk import RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

#: Paths the benchmark's own client calls; connections to the others are the bridge's.
HARNESS_PATHS = frozenset({"/authorize", "/stats", "/stats/reset"})


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class ConnectionCounter:
    """Pure ASGI: remembers each client (address, port) that calls a bridge-facing path."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.clients: set[tuple[str, int]] = set()
        self.calls: Counter[str] = Counter()
        #: When each bridge call arrived, in seconds since the last reset, by path.
        self.arrivals: dict[str, list[float]] = {}
        self.since = time.monotonic()

    def reset(self) -> None:
        self.clients.clear()
        self.calls.clear()
        self.arrivals.clear()
        self.since = time.monotonic()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in HARNESS_PATHS:
            client = scope.get("client")
            if client:
                self.clients.add((client[0], client[1]))
            self.calls[scope["path"]] += 1
            arrived = time.monotonic() - self.since
            self.arrivals.setdefault(scope["path"], []).append(arrived)
        await self.app(scope, receive, send)


class BenchIdP:
    def __init__(self, issuer: str, client_id: str, client_secret: str, delay: float) -> None:
        self.issuer = issuer
        self.client_id = client_id
        self.client_secret = client_secret
        self.delay = delay
        self.key = RSAKey.generate_key(2048, parameters={"kid": "bench-1", "use": "sig"})
        self.users = itertools.count(1)
        self.codes: dict[str, dict[str, Any]] = {}
        self.access_tokens: dict[str, dict[str, Any]] = {}
        app = Starlette(
            routes=[
                Route("/.well-known/openid-configuration", self.discovery),
                Route("/jwks", self.jwks),
                Route("/authorize", self.authorize),
                Route("/token", self.token, methods=["POST"]),
                Route("/userinfo", self.userinfo),
                Route("/stats", self.stats),
                Route("/stats/reset", self.reset, methods=["POST"]),
            ]
        )
        self.counter = ConnectionCounter(app)
        self.app = self.counter

    async def _wait(self) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)

    async def discovery(self, request: Request) -> Response:
        await self._wait()
        return JSONResponse(
            {
                "issuer": self.issuer,
                "authorization_endpoint": f"{self.issuer}/authorize",
                "token_endpoint": f"{self.issuer}/token",
                "jwks_uri": f"{self.issuer}/jwks",
                "userinfo_endpoint": f"{self.issuer}/userinfo",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic"],
                "authorization_response_iss_parameter_supported": True,
            }
        )

    async def jwks(self, request: Request) -> Response:
        await self._wait()
        return JSONResponse({"keys": [self.key.as_dict(private=False)]})

    async def authorize(self, request: Request) -> Response:
        """Signs a new user in at once and sends the browser back with a single-use code."""
        await self._wait()
        q = request.query_params
        if q.get("client_id") != self.client_id or q.get("response_type") != "code":
            return JSONResponse({"error": "invalid_request"}, status_code=400)
        if q.get("code_challenge_method") != "S256" or not q.get("code_challenge"):
            return JSONResponse({"error": "invalid_request"}, status_code=400)
        code = secrets.token_urlsafe(24)
        self.codes[code] = {
            "nonce": q.get("nonce"),
            "challenge": q["code_challenge"],
            "redirect_uri": q.get("redirect_uri"),
            "sub": f"user-{next(self.users)}",
        }
        params = {"code": code, "state": q.get("state", ""), "iss": self.issuer}
        return RedirectResponse(f"{q.get('redirect_uri')}?{urlencode(params)}", status_code=302)

    def _client_ok(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        if not header.startswith("Basic "):
            return False
        expected = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        return secrets.compare_digest(header[6:], expected)

    async def token(self, request: Request) -> Response:
        await self._wait()
        if not self._client_ok(request):
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        form = await request.form()
        grant = self.codes.pop(str(form.get("code", "")), None)
        if grant is None or form.get("grant_type") != "authorization_code":
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        verifier = str(form.get("code_verifier", ""))
        if _b64(hashlib.sha256(verifier.encode()).digest()) != grant["challenge"]:
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        if form.get("redirect_uri") != grant["redirect_uri"]:
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        sub = grant["sub"]
        profile = {
            "sub": sub,
            "email": f"{sub}@acme.test",
            "email_verified": True,
            "given_name": "Ada",
            "family_name": "Lovelace",
            "name": "Ada Lovelace",
            "groups": ["support-customers"],
        }
        access_token = secrets.token_urlsafe(32)
        self.access_tokens[access_token] = profile
        now = int(time.time())
        claims = {
            **profile,
            "iss": self.issuer,
            "aud": self.client_id,
            "iat": now,
            "exp": now + 300,
            "nonce": grant["nonce"],
            "at_hash": _b64(hashlib.sha256(access_token.encode()).digest()[:16]),
        }
        id_token = jwt.encode({"alg": "RS256", "kid": "bench-1"}, claims, self.key)
        return JSONResponse(
            {
                "access_token": access_token,
                "token_type": "Bearer",
                "expires_in": 300,
                "id_token": id_token,
            },
            headers={"Cache-Control": "no-store"},
        )

    async def userinfo(self, request: Request) -> Response:
        await self._wait()
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        profile = self.access_tokens.pop(token, None)
        if profile is None:
            return JSONResponse({"error": "invalid_token"}, status_code=401)
        return JSONResponse(profile)

    async def stats(self, request: Request) -> Response:
        spread = {
            path: {"first_s": min(times), "last_s": max(times)}
            for path, times in self.counter.arrivals.items()
        }
        return JSONResponse(
            {
                "connections": len(self.counter.clients),
                "calls": dict(self.counter.calls),
                "arrivals": spread,
            }
        )

    async def reset(self, request: Request) -> Response:
        self.counter.reset()
        return JSONResponse({"ok": True})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--client-secret", required=True)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before every answer")
    args = parser.parse_args()
    idp = BenchIdP(f"http://127.0.0.1:{args.port}", args.client_id, args.client_secret, args.delay)
    # A backlog for the slow case: 200 callbacks mean 200 connections arriving at once.
    uvicorn.run(
        idp.app,
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
        server_header=False,
        backlog=2048,
    )


if __name__ == "__main__":
    main()
