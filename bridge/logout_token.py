"""OpenID Connect Back-Channel Logout 1.0, section 2.6: is this logout token one to act on?

Pure: it reads a token whose signature the provider's key cache has already checked
(only keys from its ``jwks_uri``, only algorithms it advertises) and says whom it signs
out, or why it is refused. Whether its ``jti`` was seen before is the caller's check,
against the shared store.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

BACKCHANNEL_LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
#: A logout token older than this (by its ``iat``, beyond the leeway) is refused: the
#: spec lets an RP bound how long it remembers ``jti`` values, and this is the bound.
MAX_AGE = 300
MAX_CLAIM = 255
#: ``typ`` values a logout token may carry (section 2.4 recommends ``logout+jwt``).
ACCEPTED_TYPES = frozenset({"logout+jwt", "application/logout+jwt", "jwt"})


class LogoutTokenInvalid(Exception):
    """Why a logout token is refused; the text is safe to log and to send back."""


@dataclass(frozen=True)
class LogoutToken:
    """Whom a valid logout token signs out: every session with this ``sid``, or of this
    ``sub``, at this provider."""

    sub: str | None
    sid: str | None
    jti: str
    iat: float

    def replay_window(self, now: float, leeway: int) -> int:
        """Seconds to remember the ``jti``: after that, the ``iat`` check refuses it anyway."""
        return max(1, math.ceil(self.iat + MAX_AGE + 2 * leeway - now))


def validate(
    header: Mapping[str, Any],
    claims: Mapping[str, Any],
    *,
    issuers: Collection[str],
    client_id: str,
    algorithms: Collection[str],
    now: float,
    leeway: int,
) -> LogoutToken:
    """Section 2.6, steps 2 to 6 (the signature, step 3's other half, is already checked).

    ``issuers`` are the provider's issuer and its preset's aliases; ``algorithms`` the
    ones its discovery document advertises.
    """
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in algorithms:
        raise LogoutTokenInvalid(f"the algorithm {str(alg)[:20]!r} is not one the IdP advertises")
    typ = header.get("typ")
    if typ is not None and (not isinstance(typ, str) or typ.lower() not in ACCEPTED_TYPES):
        raise LogoutTokenInvalid(f"the typ {str(typ)[:40]!r} is not a logout token's")

    if claims.get("iss") not in issuers:
        raise LogoutTokenInvalid("the issuer is not this provider's")
    aud = claims.get("aud")
    audiences = aud if isinstance(aud, list) else [aud]
    if client_id not in audiences:
        raise LogoutTokenInvalid("the audience does not include this client")

    iat = _time(claims.get("iat"))
    if iat is None:
        raise LogoutTokenInvalid("iat is missing or not a time")
    if iat > now + leeway:
        raise LogoutTokenInvalid("iat is in the future")
    if iat < now - MAX_AGE - leeway:
        raise LogoutTokenInvalid(f"iat is more than {MAX_AGE} s old")
    if "exp" in claims:
        exp = _time(claims.get("exp"))
        if exp is None:
            raise LogoutTokenInvalid("exp is not a time")
        if exp < now - leeway:
            raise LogoutTokenInvalid("the token has expired")

    jti = claims.get("jti")
    if not _short_string(jti):
        raise LogoutTokenInvalid("jti is missing")

    events = claims.get("events")
    if not isinstance(events, dict):
        raise LogoutTokenInvalid("the events claim is missing or not an object")
    if BACKCHANNEL_LOGOUT_EVENT not in events:
        raise LogoutTokenInvalid("the events claim has no back-channel logout event")
    if not isinstance(events[BACKCHANNEL_LOGOUT_EVENT], dict):
        raise LogoutTokenInvalid("the back-channel logout event is not an object")

    sub, sid = claims.get("sub"), claims.get("sid")
    if sub is None and sid is None:
        raise LogoutTokenInvalid("the token names neither a sub nor a sid")
    for name, value in (("sub", sub), ("sid", sid)):
        if value is not None and not _short_string(value):
            raise LogoutTokenInvalid(f"{name} is not a usable string")
    if "nonce" in claims:
        raise LogoutTokenInvalid("a logout token must not carry a nonce")
    assert isinstance(jti, str)
    return LogoutToken(sub=sub, sid=sid, jti=jti, iat=iat)


def _short_string(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= MAX_CLAIM


def _time(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None
