"""What the signed session cookie holds, and the rules that keep it small and single-use.

The cookie (Starlette's SessionMiddleware, signed with itsdangerous) holds the
pending login flows and, once signed in, only what ``/auth`` and logout need:
never the IdP's access or refresh token.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
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
    except (KeyError, TypeError, ValueError):
        return None
    if time.time() - flow.created > FLOW_TTL:
        return None
    return flow


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
