"""The framework's ceiling: a bare Starlette ``POST /auth`` answering a constant JSON body.

Served with the uvicorn options ``tiledesk-bridge serve`` uses, taken from it
(``bridge.cli.serve_options``: uvloop and httptools, each answer in one write, no access
log, no server header, no proxy headers), so the only difference from the bridge is the
bridge's own work.

    python bench/bare.py --port 9200
"""

from __future__ import annotations

import argparse

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bridge.cli import serve_options

BODY = {"token": "JWT a.b.c", "expires_at": 0, "user": {"_id": "bench"}}


async def auth(request: Request) -> Response:
    return JSONResponse(BODY, headers={"Cache-Control": "no-store"})


app = Starlette(routes=[Route("/auth", auth, methods=["POST"])])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(app, host="127.0.0.1", port=args.port, **serve_options())


if __name__ == "__main__":
    main()
