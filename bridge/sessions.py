"""What a session holds, how long it lives, and the rules that keep it small and single-use.

The session (``scope["session"]``, kept by ``bridge.session_middleware`` in a
``bridge.session_store``) holds the pending login flows and, once signed in,
only what ``/auth``, logout and a later back-channel logout need: never the
IdP's access or refresh token. Its keys, all written here:

- ``flows``: pending logins, by state: provider, nonce, PKCE verifier, next path, start time,
  and for a sign-in started on a site its page, mode and challenge;
- ``sid``: this session's random id, new at every sign-in;
- ``p``: the provider; ``u``: the mapped Tiledesk user; ``at``: the sign-in time;
- ``sub`` and ``idp_sid``: the IdP's ``sub`` and ``sid`` claims, to match a logout token;
- ``h``: the ID token, as ``id_token_hint`` for logout, when it is short enough;
- ``seen``: the last activity, only with an idle limit.
"""

from __future__ import annotations

import dataclasses
import math
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bridge.identity import TiledeskUser

FLOW_TTL = 600
MAX_FLOWS = 3
#: The longest ID token kept for logout's ``id_token_hint``: what its own cookie holds.
MAX_ID_TOKEN_HINT = 2700
#: The session key of that ID token (the session middleware seals it in its own cookie).
HINT_KEY = "h"
MAX_CLAIM = 255
#: What a store may leave out when the session would not fit: logout then goes without
#: ``id_token_hint`` (the IdP asks the visitor to confirm).
OPTIONAL_KEYS = (HINT_KEY,)
#: Activity moves the idle deadline at most this often, so a signed-in page load or
#: ``POST /auth`` writes the session at most once a minute, not on every call.
IDLE_GRANULARITY = 60
#: A sign-in time further ahead than this is refused: it would stretch the session.
#: (Only the bridge seals one; this bounds what a skewed clock between instances can do.)
MAX_CLOCK_SKEW = 300


@dataclass(frozen=True)
class Flow:
    provider: str
    nonce: str
    verifier: str
    next: str
    created: float
    #: For a sign-in started on an embedding site: the page of that site it ends on,
    #: "popup" or "redirect", and the site script's PKCE-style challenge.
    return_to: str | None = None
    mode: str | None = None
    challenge: str | None = None


def add_flow(session: dict[str, Any], state: str, flow: Flow) -> None:
    """Remember a started login; a few may run at once (several tabs), the oldest drop out."""
    flows: dict[str, Any] = dict(session.get("flows") or {})
    now = time.time()
    flows = {
        s: f for s, f in flows.items() if isinstance(f, dict) and now - f.get("t", 0) < FLOW_TTL
    }
    while len(flows) >= MAX_FLOWS:
        oldest = min(flows, key=lambda s: flows[s].get("t", 0))
        del flows[oldest]
    flows[state] = {
        "p": flow.provider,
        "n": flow.nonce,
        "v": flow.verifier,
        "x": flow.next,
        "t": flow.created,
    }
    if flow.return_to is not None:
        flows[state].update(r=flow.return_to, m=flow.mode, c=flow.challenge)
    session["flows"] = flows


def pop_flow(session: dict[str, Any], state: str) -> Flow | None:
    """Take the flow for this state out of the session: a state is good for one callback."""
    flows = session.get("flows")
    if not isinstance(flows, dict) or state not in flows:
        return None
    flows = dict(flows)  # replaced, not edited: the loaded session stays as it was
    raw = flows.pop(state)
    session["flows"] = flows
    try:
        flow = Flow(str(raw["p"]), str(raw["n"]), str(raw["v"]), str(raw["x"]), float(raw["t"]))
        if "r" in raw:
            flow = dataclasses.replace(
                flow, return_to=str(raw["r"]), mode=str(raw["m"]), challenge=str(raw["c"])
            )
    except (KeyError, TypeError, ValueError):
        return None
    if time.time() - flow.created > FLOW_TTL:
        return None
    return flow


def sign_in(
    session: dict[str, Any],
    *,
    provider: str,
    user: TiledeskUser,
    id_token: str,
    claims: Mapping[str, Any],
) -> None:
    """Start a fresh session: everything from before is dropped, including other flows.

    ``id_token`` is the one the caller has just verified and ``claims`` its verified
    payload; its ``sub`` and ``sid`` are kept to match a back-channel logout token later.
    """
    session.clear()
    session["sid"] = secrets.token_urlsafe(16)
    session["p"] = provider
    session["u"] = user.as_dict()
    session["at"] = int(time.time())
    for claim, key in (("sub", "sub"), ("sid", "idp_sid")):
        value = claims.get(claim)
        if isinstance(value, str) and 0 < len(value) <= MAX_CLAIM:
            session[key] = value
    if len(id_token) <= MAX_ID_TOKEN_HINT:
        session[HINT_KEY] = id_token


def signed_in_user(session: dict[str, Any]) -> TiledeskUser | None:
    data = session.get("u")
    if not isinstance(data, dict) or "_id" not in data:
        return None
    try:
        return TiledeskUser.from_dict(data)
    except (KeyError, TypeError, ValueError):
        return None


@dataclass(frozen=True)
class Lifetime:
    """How long a session lives: the bridge's own rule, whatever the framework does.

    A sign-in lasts ``max_age`` seconds from the sign-in time, however active the
    visitor; with ``idle_timeout``, it also ends that long after the last activity.
    Pending login flows live ``FLOW_TTL`` seconds each.
    """

    max_age: int
    idle_timeout: int | None = None

    def ends_at(self, session: Mapping[str, Any]) -> float | None:
        """When the sign-in ends; None when there is none (or it has no usable time)."""
        started = _time(session.get("at"))
        return None if started is None else self._ends_at(started, session)

    def _ends_at(self, started: float, session: Mapping[str, Any]) -> float:
        end = started + self.max_age
        if self.idle_timeout is not None:
            end = min(end, (_time(session.get("seen")) or started) + self.idle_timeout)
        return end

    def sign_in_ttl(self, session: Mapping[str, Any], now: float) -> int | None:
        """Seconds until the sign-in ends however active the visitor; None when there is none."""
        started = _time(session.get("at"))
        return None if started is None else _seconds(started + self.max_age - now, self.max_age)

    def apply(self, session: dict[str, Any], now: float) -> None:
        """The rules at a request, in one pass: drop an ended sign-in (the flows stay: a
        login started just before may finish); else note the visitor's activity for the
        idle limit, at most once a minute."""
        if "u" not in session and "at" not in session:
            return
        started = _time(session.get("at"))
        if (
            started is None
            or now >= self._ends_at(started, session)
            or started > now + MAX_CLOCK_SKEW
        ):
            flows = session.get("flows")
            session.clear()
            if flows:
                session["flows"] = flows
        elif self.idle_timeout is not None:
            seen = _time(session.get("seen")) or started
            if now - seen >= IDLE_GRANULARITY:
                session["seen"] = int(now)

    def ttl(self, session: Mapping[str, Any], now: float) -> int:
        """Seconds the store and the cookie's ``Max-Age`` keep this session: what the sign-in
        or the youngest pending flow has left, whichever is longer, never more."""
        remaining = []
        end = self.ends_at(session)
        if end is not None:
            remaining.append(_seconds(end - now, self.idle_timeout or self.max_age))
        flows = session.get("flows")
        if isinstance(flows, dict):
            remaining += [
                _seconds(started + FLOW_TTL - now, FLOW_TTL)
                for f in flows.values()
                if isinstance(f, dict) and (started := _time(f.get("t"))) is not None
            ]
        return max(remaining) if remaining else FLOW_TTL


def _seconds(left: float, limit: int) -> int:
    """Whole seconds left, rounded up but never past the rule's own length."""
    return max(0, min(limit, math.ceil(left)))


def _time(value: Any) -> float | None:
    """A unix time read from a session, or None for anything else."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    if isinstance(value, int) and not 0 <= value < 2**53:
        return None  # too large for a float, let alone a time
    number = float(value)
    return number if math.isfinite(number) and number >= 0 else None
