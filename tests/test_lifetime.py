"""``Lifetime.apply``, the session's rules at every request, against the rules as written.

The session middleware calls ``apply`` once per request: it drops an ended sign-in and
notes the visitor's activity, reading the sign-in time once. The oracle below
is those two rules spelled one after the other, as the bridge took them until
``apply`` did both in one pass; any session, clock and settings must give the same
session after either.
"""

from __future__ import annotations

import copy
import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.sessions import IDLE_GRANULARITY, MAX_CLOCK_SKEW, Lifetime

NOW = 1_767_225_600.0


def _time(value: Any) -> float | None:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    if isinstance(value, int) and not 0 <= value < 2**53:
        return None
    number = float(value)
    return number if math.isfinite(number) and number >= 0 else None


def oracle(max_age: int, idle: int | None, session: dict[str, Any], now: float) -> None:
    """Drop an ended sign-in, keeping its flows; then move ``seen`` at most once a minute."""
    started = _time(session.get("at"))
    if "u" in session or "at" in session:
        end = None
        if started is not None:
            end = started + max_age
            if idle is not None:
                end = min(end, (_time(session.get("seen")) or started) + idle)
        if started is None or end is None or now >= end or started > now + MAX_CLOCK_SKEW:
            flows = session.get("flows")
            session.clear()
            if flows:
                session["flows"] = flows
    started = _time(session.get("at"))
    if idle is None or started is None:
        return
    seen = _time(session.get("seen")) or started
    if now - seen >= IDLE_GRANULARITY:
        session["seen"] = int(now)


def offset(seconds: float) -> Any:
    return NOW + seconds


times = st.one_of(
    st.none(),
    st.booleans(),
    st.text(max_size=3),
    st.integers(min_value=-10, max_value=2**60),
    st.integers(min_value=-100_000, max_value=100_000).map(lambda s: int(NOW) + s),
    st.floats(min_value=-100_000, max_value=100_000).map(offset),
    st.sampled_from([math.nan, math.inf, -math.inf, 0, 0.0, 2**53, 2**53 - 1]),
)
sessions = st.fixed_dictionaries(
    {},
    optional={
        "u": st.just({"_id": "oidc|dev|alice"}),
        "at": times,
        "seen": times,
        "flows": st.sampled_from([{}, {"state": {"t": NOW}}]),
        "sid": st.just("s1"),
    },
)


@settings(max_examples=1500, deadline=None)
@given(
    session=sessions,
    max_age=st.integers(min_value=301, max_value=10**7),
    idle=st.one_of(st.none(), st.integers(min_value=300, max_value=10**6)),
    ahead=st.floats(min_value=-(10**6), max_value=10**7),
)
def test_apply_leaves_the_session_the_two_rules_leave(
    session: dict[str, Any], max_age: int, idle: int | None, ahead: float
) -> None:
    now = NOW + ahead
    expected = copy.deepcopy(session)
    oracle(max_age, idle, expected, now)
    Lifetime(max_age, idle).apply(session, now)
    assert repr(session) == repr(expected)  # repr: NaN equals itself, 1 differs from 1.0


def test_a_signed_in_session_is_ended_kept_or_touched_exactly_as_the_settings_say() -> None:
    rules = Lifetime(max_age=3600, idle_timeout=600)
    at = int(NOW) - 1000
    fresh = {"u": {}, "at": at, "seen": int(NOW) - 30}
    rules.apply(fresh, NOW)
    assert fresh == {"u": {}, "at": at, "seen": int(NOW) - 30}  # touched under a minute ago
    moved = {"u": {}, "at": at, "seen": int(NOW) - 61}
    rules.apply(moved, NOW)
    assert moved == {"u": {}, "at": at, "seen": int(NOW)}
    idle = {"u": {}, "at": at, "seen": int(NOW) - 600, "flows": {"s": {"t": NOW}}}
    rules.apply(idle, NOW)
    assert idle == {"flows": {"s": {"t": NOW}}}  # ended; the pending login stays
    ahead = {"u": {}, "at": int(NOW) + MAX_CLOCK_SKEW + 1}
    rules.apply(ahead, NOW)
    assert ahead == {}
