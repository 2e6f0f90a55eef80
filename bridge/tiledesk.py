"""Pure: Tiledesk user -> signed custom JWT, exactly the claims Tiledesk reads.

Never ``nbf`` (Tiledesk enforces it with zero tolerance) and never ``role``
(it would turn a visitor into an agent).
"""

from __future__ import annotations

import time
import uuid
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
    assert not FORBIDDEN_CLAIMS & payload.keys()
    return payload


def mint(
    user: TiledeskUser, *, project_id: str, secret: str, ttl: int, now: int | None = None
) -> MintedToken:
    issued = int(time.time()) if now is None else now
    payload = build_payload(user, project_id=project_id, ttl=ttl, now=issued)
    jws = jwt.encode(payload, secret, algorithm="HS256")
    return MintedToken(token=TOKEN_SCHEME + jws, expires_at=payload["exp"], payload=payload)
