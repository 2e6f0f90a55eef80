"""The bridge's JSON answers, serialised with orjson.

Starlette's ``JSONResponse`` runs the standard library's encoder, a sizeable share of a
``POST /auth``; orjson writes the same JSON several times faster. A value orjson refuses
(an integer past 64 bits, which an IdP's claim can carry) goes through ``json`` instead.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from starlette.responses import JSONResponse as _StarletteJSONResponse


def render_json(content: Any) -> bytes:
    """``content`` as the JSON body of an answer."""
    try:
        return orjson.dumps(content)
    except orjson.JSONEncodeError:
        # What Starlette's JSONResponse writes.
        text = json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        return text.encode()


class JSONResponse(_StarletteJSONResponse):
    def render(self, content: Any) -> bytes:
        return render_json(content)


__all__ = ["JSONResponse", "render_json"]
