"""Pure: Tiledesk user -> signed custom JWT, exactly the claims Tiledesk reads.

Never ``nbf`` (Tiledesk enforces it with zero tolerance) and never ``role``
(it would turn a visitor into an agent).
"""

from __future__ import annotations

import functools
import json
import secrets
import time
from collections.abc import Mapping
from typing import Any, NamedTuple

import orjson
from jwt.algorithms import HMACAlgorithm
from jwt.utils import base64url_encode

from bridge.identity import TiledeskUser

FORBIDDEN_CLAIMS = frozenset({"role", "nbf"})
TOKEN_SCHEME = "JWT "  # noqa: S105 - the scheme, not a secret


class MintedToken(NamedTuple):
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
        # 128 bits from the OS's CSPRNG, as a UUID4 carries (122), in a third fewer characters
        # and a fraction of the time: ``uuid4`` builds a UUID object on every call.
        "jti": secrets.token_urlsafe(16),
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


class Signer:
    """HS256 with the project secret, prepared once: PyJWT's HMAC, key and header made up front.

    ``jwt.encode`` prepares and checks the key and serialises the same header on every
    call; a token here is the same bytes, minus that work.
    """

    def __init__(self, secret: str) -> None:
        self._hmac = HMACAlgorithm(HMACAlgorithm.SHA256)
        self._key = self._hmac.prepare_key(secret)
        header = json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":"))
        self._header = base64url_encode(header.encode())

    def sign(self, payload: Mapping[str, Any]) -> str:
        body = _strict_json(payload)
        signing_input = self._header + b"." + base64url_encode(body)
        signature = base64url_encode(self._hmac.sign(signing_input, self._key))
        return (signing_input + b"." + signature).decode("ascii")


def _strict_json(payload: Mapping[str, Any]) -> bytes:
    """The payload as JSON that Tiledesk's ``JSON.parse`` reads: never NaN or Infinity.

    orjson (several times faster than ``json`` on this hot path) writes those as
    ``null``, so a ``null`` in its output sends the payload through ``json``'s strict
    mode, which refuses them; so does an integer past 64 bits, which orjson refuses.
    """
    try:
        body = orjson.dumps(payload)
    except orjson.JSONEncodeError:
        body = b"null"
    if b"null" in body:
        body = json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()
    return body


@functools.lru_cache(maxsize=4)
def signer(secret: str) -> Signer:
    """One signer per secret and process."""
    return Signer(secret)


class Minter:
    """Tokens for one Tiledesk project, with what they all share settled once: the
    project, the lifetime and the signer (key and JOSE header)."""

    def __init__(self, *, project_id: str, secret: str, ttl: int) -> None:
        self.project_id = project_id
        self.ttl = ttl
        self._signer = signer(secret)

    def mint(self, user: TiledeskUser, *, now: int | None = None) -> MintedToken:
        issued = int(time.time()) if now is None else now
        payload = build_payload(user, project_id=self.project_id, ttl=self.ttl, now=issued)
        return MintedToken(TOKEN_SCHEME + self._signer.sign(payload), payload["exp"], payload)


def mint(
    user: TiledeskUser, *, project_id: str, secret: str, ttl: int, now: int | None = None
) -> MintedToken:
    return Minter(project_id=project_id, secret=secret, ttl=ttl).mint(user, now=now)
