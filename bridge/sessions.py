"""What the signed session cookie holds, and the rules that keep it small and single-use.

The cookie (Starlette's SessionMiddleware, signed with itsdangerous) holds the
pending login flows and, once signed in, only what ``/auth`` and logout need:
never the IdP's access or refresh token.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from bridge.identity import TiledeskUser

FLOW_TTL = 600
MAX_FLOWS = 3
#: Browsers drop cookies over 4096 bytes; leave room for the name, signature and flags.
MAX_SESSION_B64 = 3800
MAX_ID_TOKEN_HINT = 1200


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


class UsedStates:
    """States already spent, remembered until their flow would have expired anyway.

    The cookie alone cannot make a state single-use (an old cookie can be replayed),
    so each worker remembers the states it has seen; the IdP's single-use code is
    the backstop across workers.
    """

    def __init__(self, limit: int = 100_000) -> None:
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._limit = limit

    def spend(self, state: str) -> bool:
        """True the first time a state is seen, False on every replay."""
        now = time.time()
        while self._seen and next(iter(self._seen.values())) < now - FLOW_TTL:
            self._seen.popitem(last=False)
        if state in self._seen:
            return False
        self._seen[state] = now
        while len(self._seen) > self._limit:
            self._seen.popitem(last=False)
        return True


def sign_in(session: dict[str, Any], *, provider: str, user: TiledeskUser, id_token: str) -> None:
    """Start a fresh session: everything from before is dropped, including other flows."""
    session.clear()
    session["sid"] = secrets.token_urlsafe(16)
    session["p"] = provider
    session["u"] = user.as_dict()
    session["at"] = int(time.time())
    if len(id_token) <= MAX_ID_TOKEN_HINT:
        session["h"] = id_token
    if _size(session) > MAX_SESSION_B64:
        session.pop("h", None)


def _size(session: dict[str, Any]) -> int:
    return len(base64.b64encode(json.dumps(session).encode()))


def signed_in_user(session: dict[str, Any]) -> TiledeskUser | None:
    data = session.get("u")
    if not isinstance(data, dict) or "_id" not in data:
        return None
    try:
        return TiledeskUser.from_dict(data)
    except (KeyError, TypeError, ValueError):
        return None
