"""The bridge's JSON answers, serialised with orjson.

Starlette's ``JSONResponse`` runs the standard library's encoder, a sizeable share of a
``POST /auth``; orjson writes the same JSON several times faster. A value orjson refuses
(an integer past 64 bits, which an IdP's claim can carry) goes through ``json`` instead.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import JSONResponse as _StarletteJSONResponse


class JSONResponse(_StarletteJSONResponse):
    def render(self, content: Any) -> bytes:
        try:
            return orjson.dumps(content)
        except orjson.JSONEncodeError:
            return super().render(content)


__all__ = ["JSONResponse"]
