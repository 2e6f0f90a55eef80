"""The stack's floor for a signed-in ``POST /auth``: its library work and nothing else.

A raw ASGI app that opens the session cookie with the bridge's own sealer (strict
base64, AES-256-GCM), reads it with orjson, builds the Tiledesk payload and signs it
with the bridge's own signer (orjson, base64, HMAC-SHA256), and answers the token and
the user as JSON with three headers (401 without a session). No middleware, no request
id, no origin, lifetime or revocation check, no security headers, no metric: it shows
what the libraries under the bridge cost on this machine, so that ``bench.py
--auth-only --floor`` can tell that cost from the bridge's own. Not a server to run.

    python bench/floor.py --port 9300 --secrets DIR --project-id 64f0c0ffee00000000000001
"""

from __future__ import annotations

import argparse
import secrets
import time
from pathlib import Path
from typing import Any

import orjson
import uvicorn
from starlette.types import Receive, Scope, Send

from bridge.cli import serve_options
from bridge.session_store import CookieSealer
from bridge.settings import SessionSettings
from bridge.tiledesk import TOKEN_SCHEME, Signer, audience

TTL = 600
HEADERS = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]


def floor_app(session_secret: str, tiledesk_secret: str, cookie_name: str, project_id: str) -> Any:
    sealer = CookieSealer(session_secret, cookie_name=cookie_name)
    signer = Signer(tiledesk_secret)
    aud = audience(project_id)
    prefix = f"{cookie_name}="

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        cookie = next((v for n, v in scope["headers"] if n == b"cookie"), b"").decode("latin-1")
        start = cookie.find(prefix)
        opened = sealer.open(cookie[start + len(prefix) :].split(";", 1)[0]) if start >= 0 else None
        if opened is None:
            await send({"type": "http.response.start", "status": 401, "headers": HEADERS})
            await send({"type": "http.response.body", "body": b'{"error":"not_signed_in"}'})
            return
        user = orjson.loads(opened[0])["d"]["u"]
        now = int(time.time())
        payload = {
            "_id": user["_id"],
            "sub": "userexternal",
            "aud": aud,
            "attributes": user.get("attributes", {}),
            "iat": now,
            "exp": now + TTL,
            "jti": secrets.token_urlsafe(16),
        }
        payload.update((k, user[k]) for k in ("firstname", "lastname", "email") if user.get(k))
        token = TOKEN_SCHEME + signer.sign(payload)
        data = orjson.dumps({"token": token, "expires_at": now + TTL, "user": user})
        headers = [(b"content-length", str(len(data)).encode()), *HEADERS]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": data})

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--secrets", type=Path, required=True, help="the folder of session_secret, tiledesk_secret"
    )
    parser.add_argument(
        "--cookie-name",
        default=SessionSettings.model_fields["cookie_name"].default,
        help="[session] cookie_name (default: its default, as the bench's settings keep it)",
    )
    parser.add_argument("--project-id", required=True)
    args = parser.parse_args()
    app = floor_app(
        (args.secrets / "session_secret").read_text().strip(),
        (args.secrets / "tiledesk_secret").read_text().strip(),
        args.cookie_name,
        args.project_id,
    )
    uvicorn.run(app, host="127.0.0.1", port=args.port, **serve_options())


if __name__ == "__main__":
    main()
