"""Pure: Tiledesk user -> signed custom JWT, exactly the claims Tiledesk reads.

Never ``nbf`` (Tiledesk enforces it with zero tolerance) and never ``role``
(it would turn a visitor into an agent).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt

from bridge.identity import TiledeskUser

FORBIDDEN_CLAIMS = frozenset({"role", "nbf"})
TOKEN_SCHEME = "JWT "  # noqa: S105 - the scheme, not a secret


@dataclass(frozen=True)
class MintedToken:
    token: str  # "JWT <jws>", the exact string the widget sends back
    expires_at: int
    payload: dict[str, Any]


def audience(project_id: str) -> str:
    return f"https://tiledesk.com/projects/{project_id}"


def build_payload(user: TiledeskUser, *, project_id: str, ttl: int, now: int) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "_id": user.id,
        "sub": "userexternal",
        "aud": audience(project_id),
        "attributes": dict(user.attributes),
        "iat": now,
        "exp": now + ttl,
        "jti": str(uuid.uuid4()),
    }
    for key in ("firstname", "lastname", "email"):
        value = getattr(user, key)
        if value:
            payload[key] = value
    refuse_forbidden_claims(payload)
    return payload


def refuse_forbidden_claims(payload: Mapping[str, Any]) -> None:
    """A real check, not an ``assert``: ``python -O`` must not let ``role`` make a visitor staff."""
    forbidden = sorted(FORBIDDEN_CLAIMS & payload.keys())
    if forbidden:
        raise ValueError(
            f"the Tiledesk payload would carry {', '.join(forbidden)}, which the bridge never emits"
        )


class _StrictJSONEncoder(json.JSONEncoder):
    """Tiledesk parses tokens with ``JSON.parse``: NaN or Infinity is an error, never a token."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs["allow_nan"] = False
        super().__init__(**kwargs)


def mint(
    user: TiledeskUser, *, project_id: str, secret: str, ttl: int, now: int | None = None
) -> MintedToken:
    issued = int(time.time()) if now is None else now
    payload = build_payload(user, project_id=project_id, ttl=ttl, now=issued)
    jws = jwt.encode(payload, secret, algorithm="HS256", json_encoder=_StrictJSONEncoder)
    return MintedToken(token=TOKEN_SCHEME + jws, expires_at=payload["exp"], payload=payload)
