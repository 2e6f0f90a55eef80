"""Back-Channel Logout 1.0 section 2.6, claim by claim: the certification plan's negative cases.

The signature half (alg none, a bad signature, a key the IdP never published) is
refused by the provider's key cache before these checks, and is tested through the
route in ``tests/test_backchannel_logout.py``.
"""

from __future__ import annotations

from typing import Any

import pytest

from bridge.logout_token import (
    BACKCHANNEL_LOGOUT_EVENT,
    MAX_AGE,
    LogoutToken,
    LogoutTokenInvalid,
    validate,
)

ISSUER = "https://sso.acme.test/realms/acme"
CLIENT_ID = "bridge-client"
NOW = 1_800_000_000
LEEWAY = 60


def claims(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "iss": ISSUER,
        "aud": CLIENT_ID,
        "iat": NOW - 5,
        "exp": NOW + 115,
        "jti": "bWJq",
        "sid": "08a5019c-17e1-4977-8f42-65a12843ea02",
        "sub": "248289761001",
        "events": {BACKCHANNEL_LOGOUT_EVENT: {}},
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def check(body: dict[str, Any], header: dict[str, Any] | None = None) -> LogoutToken:
    return validate(
        header if header is not None else {"alg": "RS256", "typ": "logout+jwt", "kid": "k1"},
        body,
        issuers=[ISSUER],
        client_id=CLIENT_ID,
        algorithms=["RS256", "ES256"],
        now=NOW,
        leeway=LEEWAY,
    )


def refused(body: dict[str, Any], header: dict[str, Any] | None = None) -> str:
    with pytest.raises(LogoutTokenInvalid) as caught:
        check(body, header)
    return str(caught.value)


def test_valid_logout_token_names_its_sid_and_sub() -> None:
    assert check(claims()) == LogoutToken(
        sub="248289761001", sid="08a5019c-17e1-4977-8f42-65a12843ea02", jti="bWJq", iat=NOW - 5
    )


def test_valid_logout_token_with_sid_only() -> None:
    token = check(claims(sub=None))
    assert (token.sub, token.sid) == (None, "08a5019c-17e1-4977-8f42-65a12843ea02")


def test_valid_logout_token_with_sub_only_and_no_exp() -> None:
    token = check(claims(sid=None, exp=None))
    assert (token.sub, token.sid) == ("248289761001", None)


def test_valid_logout_token_with_several_audiences_and_plain_jwt_type() -> None:
    header = {"alg": "ES256", "typ": "JWT"}
    assert check(claims(aud=["other", CLIENT_ID]), header).jti == "bWJq"


def test_valid_logout_token_inside_the_leeway() -> None:
    assert check(claims(iat=NOW + LEEWAY, exp=NOW - LEEWAY)).jti == "bWJq"


def test_rp_backchannel_lt_alg_none() -> None:
    assert (
        refused(claims(), {"alg": "none"}) == "the algorithm 'none' is not one the IdP advertises"
    )


def test_rp_backchannel_lt_wrong_alg() -> None:
    assert refused(claims(), {"alg": "HS256"}) == (
        "the algorithm 'HS256' is not one the IdP advertises"
    )


def test_rp_backchannel_lt_no_events() -> None:
    assert refused(claims(events=None)) == "the events claim is missing or not an object"


def test_rp_backchannel_lt_events_not_an_object() -> None:
    assert refused(claims(events=[BACKCHANNEL_LOGOUT_EVENT])) == (
        "the events claim is missing or not an object"
    )


def test_rp_backchannel_lt_wrong_event() -> None:
    wrong = {"http://schemas.openid.net/event/frontchannel-logout": {}}
    assert refused(claims(events=wrong)) == "the events claim has no back-channel logout event"


def test_rp_backchannel_lt_event_value_not_an_object() -> None:
    assert refused(claims(events={BACKCHANNEL_LOGOUT_EVENT: "yes"})) == (
        "the back-channel logout event is not an object"
    )


def test_rp_backchannel_lt_with_nonce() -> None:
    assert refused(claims(nonce="n-0S6_WzA2Mj")) == "a logout token must not carry a nonce"


def test_rp_backchannel_lt_wrong_aud() -> None:
    assert refused(claims(aud="someone-else")) == "the audience does not include this client"


def test_rp_backchannel_lt_no_aud() -> None:
    assert refused(claims(aud=None)) == "the audience does not include this client"


def test_rp_backchannel_lt_wrong_issuer() -> None:
    assert refused(claims(iss="https://evil.test")) == "the issuer is not this provider's"


def test_rp_backchannel_lt_neither_sid_nor_sub() -> None:
    assert refused(claims(sid=None, sub=None)) == "the token names neither a sub nor a sid"


def test_rp_backchannel_lt_sub_not_a_string() -> None:
    assert refused(claims(sub=42)) == "sub is not a usable string"


def test_rp_backchannel_lt_no_jti() -> None:
    assert refused(claims(jti=None)) == "jti is missing"


def test_rp_backchannel_lt_no_iat() -> None:
    assert refused(claims(iat=None)) == "iat is missing or not a time"


def test_rp_backchannel_lt_old_iat() -> None:
    assert refused(claims(iat=NOW - MAX_AGE - LEEWAY - 1, exp=None)) == (
        f"iat is more than {MAX_AGE} s old"
    )


def test_rp_backchannel_lt_iat_in_the_future() -> None:
    assert refused(claims(iat=NOW + LEEWAY + 1)) == "iat is in the future"


def test_rp_backchannel_lt_expired() -> None:
    assert refused(claims(exp=NOW - LEEWAY - 1)) == "the token has expired"


def test_rp_backchannel_lt_wrong_typ() -> None:
    header = {"alg": "RS256", "typ": "id_token+jwt"}
    assert refused(claims(), header) == "the typ 'id_token+jwt' is not a logout token's"


def test_jti_is_remembered_until_the_iat_check_would_refuse_it() -> None:
    token = check(claims())
    assert token.replay_window(NOW, LEEWAY) == MAX_AGE + 2 * LEEWAY - 5
