"""The sealed cookie store: AES-256-GCM under HKDF-derived keys, rotation, expiry, size."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from bridge.session_store import CookieSealer, CookieStore, Loaded, SessionTooLarge

SECRET = "current-session-secret-0123456789-abcdefghij"
OLD = "old-session-secret-0123456789-abcdefghijklmn"
OLDER = "older-session-secret-0123456789-abcdefghijkl"
NAME = "bridge_session"


class FixedClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def store(
    *, secret: str = SECRET, previous: tuple[str, ...] = (), max_value: int = 3900, now: float = 1e9
) -> CookieStore:
    sealer = CookieSealer(secret, previous, cookie_name=NAME)
    return CookieStore(sealer, max_value=max_value, clock=FixedClock(now))


def save(target: CookieStore, data: dict[str, Any], ttl: int = 600) -> str:
    return asyncio.run(target.save(data, ttl=ttl, previous=None, renew=True))


def load(target: CookieStore, value: str) -> Loaded | None:
    return asyncio.run(target.load(value))


# --- the sealer -------------------------------------------------------------------------------


def test_a_sealed_value_is_versioned_and_cookie_safe() -> None:
    value = CookieSealer(SECRET, cookie_name=NAME).seal(b'{"a": 1}')
    assert re.fullmatch(r"v1\.[A-Za-z0-9_-]+", value), value
    # 12-byte nonce + 8 bytes + 16-byte tag = 36 bytes = 48 base64 characters.
    assert len(value) == 3 + 48 == CookieSealer.sealed_length(8)


@pytest.mark.parametrize("size", [0, 1, 2, 3, 4, 100, 2500])
def test_sealed_length_is_exact(size: int) -> None:
    value = CookieSealer(SECRET, cookie_name=NAME).seal(b"x" * size)
    assert len(value) == CookieSealer.sealed_length(size)


def test_open_tells_which_secret_sealed_it() -> None:
    sealer = CookieSealer(SECRET, (OLD, OLDER), cookie_name=NAME)
    assert sealer.open(CookieSealer(SECRET, cookie_name=NAME).seal(b"now")) == (b"now", False)
    assert sealer.open(CookieSealer(OLD, cookie_name=NAME).seal(b"old")) == (b"old", True)
    assert sealer.open(CookieSealer(OLDER, cookie_name=NAME).seal(b"older")) == (b"older", True)
    assert sealer.open(sealer.seal(b"new")) == (b"new", False), "sealing uses the current one"
    removed = CookieSealer(SECRET, (OLD,), cookie_name=NAME)
    assert removed.open(CookieSealer(OLDER, cookie_name=NAME).seal(b"older")) is None


def test_a_value_moved_to_another_cookie_name_opens_nothing() -> None:
    value = CookieSealer(SECRET, cookie_name="other").seal(b"x")
    assert CookieSealer(SECRET, cookie_name=NAME).open(value) is None


def test_every_one_character_change_is_refused() -> None:
    """Strict decoding too: no second spelling of a value (base64's spare bits) opens."""
    sealer = CookieSealer(SECRET, cookie_name=NAME)
    value = sealer.seal(b"seventeen bytes!!")  # 45 bytes: the last character has spare bits
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.="
    refused = 0
    for position in range(len(value)):
        for char in alphabet:
            if char != value[position]:
                assert sealer.open(value[:position] + char + value[position + 1 :]) is None
                refused += 1
    assert refused == len(value) * (len(alphabet) - 1)
    for cut in (value[:-1], value + "A", value + "=", value[:3], "v1" + value[2:].upper()):
        assert sealer.open(cut) is None


@pytest.mark.parametrize(
    "value", ["", "v1", "v1.", "v1.===", "v1.é", "v2.AAAA", "V1.AAAA", "v1." + "A" * 9000]
)
def test_malformed_values_open_nothing(value: str) -> None:
    assert CookieSealer(SECRET, cookie_name=NAME).open(value) is None


# --- the store ----------------------------------------------------------------------------------


def test_a_saved_session_loads_until_its_ttl_and_not_after() -> None:
    writer = store(now=1000)
    value = save(writer, {"sid": "s", "n": [1, "é"]}, ttl=600)
    assert load(store(now=1599), value) == Loaded({"sid": "s", "n": [1, "é"]}, stale=False)
    assert load(store(now=1600), value) is None


def test_the_plaintext_is_the_session_and_its_expiry_nothing_else() -> None:
    value = save(store(now=1000), {"sid": "s"}, ttl=600)
    plaintext, _ = CookieSealer(SECRET, cookie_name=NAME).open(value) or (b"", False)
    # "x": written by orjson, so orjson reads every number in it back exactly.
    assert json.loads(plaintext) == {"e": 1600, "d": {"sid": "s"}, "x": 1}


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()  # past 64 bits too, which orjson would read back as floats
    | st.floats()  # NaN and the infinities too, which orjson would write as null
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@hypothesis_settings(max_examples=400, deadline=None)
@given(data=st.dictionaries(st.text(), JSON_VALUES, max_size=6))
def test_a_session_reads_back_exactly_as_the_json_module_would_read_it(
    data: dict[str, Any],
) -> None:
    """orjson reads most sessions, several times faster; never at the cost of a value."""
    expected = json.loads(json.dumps(data))
    loaded = load(store(), save(store(max_value=100_000), data))
    assert loaded is not None
    assert repr(loaded.data) == repr(expected)  # repr: 1 and 1.0, 0.0 and -0.0 differ


@pytest.mark.parametrize(
    ("plaintext", "expected"),
    [
        # Sealed by the version before orjson (no "x"): read with json, integers kept whole.
        (b'{"e":2000,"d":{"n":123456789012345678901234567890}}', 123456789012345678901234567890),
        (b'{"e":2000,"d":{"n":-9999999999999999999}}', -9999999999999999999),
        (b'{"e":2000,"d":{"n":NaN}}', "nan"),
        (b'{"e":2000,"d":{"n":1e400}}', "inf"),
        # Marked but not orjson's (a bridge never writes that): still read as json reads it.
        (b'{"e":2000,"d":{"n":NaN},"x":1}', "nan"),
    ],
)
def test_a_session_sealed_without_the_mark_keeps_every_number(
    plaintext: bytes, expected: Any
) -> None:
    value = CookieSealer(SECRET, cookie_name=NAME).seal(plaintext)
    loaded = load(store(now=1000), value)
    assert loaded is not None
    assert repr(loaded.data["n"]) == repr(
        expected if isinstance(expected, int) else float(expected)
    )


def test_a_session_from_a_previous_secret_loads_as_stale() -> None:
    value = save(store(secret=OLD), {"sid": "s"})
    assert load(store(previous=(OLD,)), value) == Loaded({"sid": "s"}, stale=True)
    assert load(store(), value) is None


@pytest.mark.parametrize(
    "plaintext",
    [b"", b"null", b"[]", b'"d"', b'{"d": {}}', b'{"e": 2000}', b'{"e": "2000", "d": {}}',
     b'{"e": true, "d": {}}', b'{"e": 2000, "d": []}', b"\xff\xfe"],
)  # fmt: skip
def test_a_sealed_envelope_of_another_shape_loads_nothing(plaintext: bytes) -> None:
    value = CookieSealer(SECRET, cookie_name=NAME).seal(plaintext)
    assert load(store(now=1000), value) is None


def test_the_id_token_hint_is_left_out_when_the_session_would_not_fit() -> None:
    small = {"sid": "s", "u": {"_id": "x" * 100}, "h": "h" * 1000}
    fits = len(save(store(), small))
    tight = store(max_value=fits - 1)
    value = save(tight, small)
    assert len(value) <= fits - 1
    assert load(tight, value) == Loaded({"sid": "s", "u": {"_id": "x" * 100}}, stale=False)
    assert load(store(), save(store(), small)) == Loaded(small, stale=False)


def test_a_session_that_cannot_fit_even_without_the_hint_is_refused() -> None:
    with pytest.raises(SessionTooLarge, match=r"needs a \d+-character cookie value; at most 200"):
        save(store(max_value=200), {"u": {"_id": "x" * 300}})
