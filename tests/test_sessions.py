"""The session as a visitor's browser lives it: what the cookie reveals, how long it lasts,
when it is written, and how the session secret is rotated.

Time is a fake clock (``time.time`` patched), never a sleep; the browser is Starlette's
TestClient, whose cookie jar drops a cookie at its ``Max-Age`` as a browser does.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import copy
import re
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from starlette.testclient import TestClient

from bridge.settings import SettingsError, parse_settings
from bridge.web import create_app
from tests.conftest import PUBLIC_URL, SESSION_SECRET, base_settings, login
from tests.idp import FakeIdP
from tests.security import hint_of, seal_session, session_of

COOKIE = "bridge_session"
MAX_AGE = 8 * 3600
OTHER_SECRET = "another-session-secret-0123456789-abcdefghij"
THIRD_SECRET = "a-third-session-secret-0123456789-abcdefghij"


@dataclass
class Clock:
    now: float
    #: The real clock, which the relying party's own clock (bound at import) still reads.
    real: Callable[[], float]

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """Every ``time.time()`` reads this clock: the bridge, the fake IdP and the cookie jar."""
    fake = Clock(time.time(), time.time)
    monkeypatch.setattr(time, "time", lambda: fake.now)
    return fake


@pytest.fixture
def make_client(settings_data: dict[str, Any], idps: dict[str, FakeIdP]) -> Iterator[Any]:
    """A browser on an app built with these ``[session]`` settings (merged into the defaults)."""
    clients: list[TestClient] = []

    def make(**session: Any) -> TestClient:
        data = copy.deepcopy(settings_data)
        data["session"].update(session)
        app = create_app(parse_settings(data), warm_up=False)
        client = TestClient(app, base_url=PUBLIC_URL, follow_redirects=False)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def auth_with(client: TestClient, cookie: str | None = None) -> httpx.Response:
    """POST /auth as the page does; ``cookie`` sends that value whatever the jar holds."""
    headers = {"Origin": PUBLIC_URL}
    if cookie is not None:
        headers["Cookie"] = f"{COOKIE}={cookie}"
    return client.post("/auth", headers=headers)


def session_cookies(response: httpx.Response) -> list[str]:
    return [c for c in response.headers.get_list("set-cookie") if c.startswith(f"{COOKIE}=")]


def the_session_cookie(response: httpx.Response) -> str:
    cookies = session_cookies(response)
    assert len(cookies) == 1, response.headers
    return cookies[0]


def cookie_value(set_cookie: str) -> str:
    return set_cookie.split(";", 1)[0].split("=", 1)[1]


def max_age(set_cookie: str) -> int:
    match = re.search(r";\s*max-age=(-?\d+)", set_cookie, re.I)
    assert match, set_cookie
    return int(match.group(1))


def signed_in_cookie(client: TestClient, idp: FakeIdP) -> str:
    response = login(client, idp)
    assert response.status_code == 303, response.text
    return cookie_value(the_session_cookie(response))


def decodings(value: str) -> list[bytes]:
    """Every reading of a cookie value someone holding it could try without a key."""
    out = [value.encode()]
    for part in re.split(r"[.:|]", value):
        for decode in (base64.urlsafe_b64decode, base64.b64decode):
            try:
                raw = decode(part + "=" * (-len(part) % 4))
            except (binascii.Error, ValueError):
                continue
            out.append(raw)
            for wbits in (15, -15, 31):
                with contextlib.suppress(zlib.error):
                    out.append(zlib.decompress(raw, wbits))
    return out


# --- what the cookie reveals -------------------------------------------------------------


def test_cookie_reveals_no_name_email_attribute_or_id_token(
    client: TestClient, idp: FakeIdP
) -> None:
    value = signed_in_cookie(client, idp)
    id_token = idp.routes["token"].calls.last.response.json()["id_token"]
    assert auth_with(client).status_code == 200
    revealing = [b"Ada", b"Lovelace", b"ada@acme.test", b"support", b"user-1", b'"u"']
    revealing += [id_token.encode(), id_token.split(".")[1].encode()]
    for reading in decodings(value):
        for secret in revealing:
            assert secret not in reading, f"{secret!r} readable in the cookie"


def test_two_logins_of_the_same_person_give_unrelated_cookies(
    client: TestClient, idp: FakeIdP
) -> None:
    first = signed_in_cookie(client, idp)
    second = signed_in_cookie(client, idp)
    shared = next(i for i, (a, b) in enumerate(zip(first, second, strict=False)) if a != b)
    assert shared < 8, "a fresh nonce: only the format's version prefix is shared"


# --- how long a session lives ---------------------------------------------------------------


def test_session_ends_at_max_age_from_sign_in_while_the_visitor_stays_active(
    client: TestClient, idp: FakeIdP, clock: Clock
) -> None:
    """An active visitor (the page asks /auth on every load) is still signed out at max_age."""
    signed_in_cookie(client, idp)
    for _ in range(7):
        clock.advance(3600)
        assert auth_with(client).status_code == 200
        client.get("/")
    clock.advance(3600 - 1)
    assert auth_with(client).status_code == 200
    clock.advance(2)
    assert auth_with(client).status_code == 401


def test_session_ends_at_max_age_even_when_the_browser_keeps_sending_the_cookie(
    client: TestClient, idp: FakeIdP, clock: Clock
) -> None:
    value = signed_in_cookie(client, idp)
    clock.advance(MAX_AGE - 1)
    assert auth_with(client, value).status_code == 200
    clock.advance(2)
    answer = auth_with(client, value)
    assert answer.status_code == 401
    assert answer.json() == {"error": "not_signed_in"}
    assert max_age(the_session_cookie(answer)) == 0, "the ended session's cookie is deleted"
    page = client.get("/", headers={"Cookie": f"{COOKIE}={value}"})
    assert 'id="signout"' not in page.text


def test_cookie_max_age_is_the_remaining_lifetime_never_extended(
    client: TestClient, idp: FakeIdP, clock: Clock
) -> None:
    response = login(client, idp)
    assert max_age(the_session_cookie(response)) == MAX_AGE
    clock.advance(3600)
    # Starting another login writes the session: its cookie must not outlive the sign-in.
    restart = client.get("/login/acme")
    assert restart.status_code == 302
    assert max_age(the_session_cookie(restart)) == MAX_AGE - 3600
    clock.advance(3600)
    assert auth_with(client).status_code == 200


def test_a_login_not_finished_keeps_a_short_lived_cookie(client: TestClient) -> None:
    response = client.get("/login/acme")
    assert response.status_code == 302
    assert max_age(the_session_cookie(response)) == 600


def test_a_login_started_just_before_the_end_can_still_finish(
    client: TestClient, idp: FakeIdP, clock: Clock
) -> None:
    signed_in_cookie(client, idp)
    clock.advance(MAX_AGE - 10)
    now = int(clock.real())
    idp.tamper = lambda claims, header: claims.update(iat=now, auth_time=now, exp=now + 300)
    code, state = idp.authorize(client.get("/login/acme").headers["location"])
    clock.advance(60)
    assert auth_with(client).status_code == 401, "the old sign-in has ended"
    response = client.get("/callback/acme", params={"code": code, "state": state})
    assert response.status_code == 303
    assert max_age(the_session_cookie(response)) == MAX_AGE
    assert auth_with(client).status_code == 200


def test_signed_in_auth_sets_no_cookie(client: TestClient, idp: FakeIdP, clock: Clock) -> None:
    """POST /auth is the hot path: nothing changed, nothing written, on any Starlette."""
    signed_in_cookie(client, idp)
    for _ in range(3):
        clock.advance(20)
        answer = auth_with(client)
        assert answer.status_code == 200
        assert session_cookies(answer) == []
    assert session_cookies(client.get("/")) == []


def test_idle_timeout_ends_an_unused_session(make_client: Any, idp: FakeIdP, clock: Clock) -> None:
    client = make_client(idle_timeout=1800)
    value = signed_in_cookie(client, idp)
    clock.advance(1799)
    assert auth_with(client, value).status_code == 200
    clock.advance(1800 + 1)
    assert auth_with(client, value).status_code == 401


def test_idle_timeout_is_pushed_back_by_activity_at_most_once_a_minute(
    make_client: Any, idp: FakeIdP, clock: Clock
) -> None:
    client = make_client(idle_timeout=1800)
    response = login(client, idp)
    assert max_age(the_session_cookie(response)) == 1800
    clock.advance(30)
    assert session_cookies(auth_with(client)) == [], "within the minute: no write"
    clock.advance(60)
    refreshed = auth_with(client)
    assert refreshed.status_code == 200
    assert max_age(the_session_cookie(refreshed)) == 1800
    # Active every 25 minutes: never idle, and still signed out at max_age from the sign-in.
    for step in range(1, 20):
        clock.advance(1500)
        assert auth_with(client).status_code == 200, step
    clock.advance(1500)
    assert auth_with(client).status_code == 401


def test_idle_refresh_never_pushes_the_cookie_past_the_absolute_limit(
    make_client: Any, idp: FakeIdP, clock: Clock
) -> None:
    client = make_client(idle_timeout=1800)
    signed_in_cookie(client, idp)
    for _ in range(15):
        clock.advance(1800 - 60)
        assert auth_with(client).status_code == 200
    # 15 * 1740 s = 26100 s after sign-in: 2700 s left, more than the idle limit.
    clock.advance(1800 - 60)
    answer = auth_with(client)
    assert answer.status_code == 200
    assert max_age(the_session_cookie(answer)) == MAX_AGE - 16 * 1740
    clock.advance(MAX_AGE - 16 * 1740)
    assert auth_with(client).status_code == 401


def test_logout_deletes_the_cookie(client: TestClient, idp: FakeIdP) -> None:
    value = signed_in_cookie(client, idp)
    out = client.post("/logout", headers={"Origin": PUBLIC_URL})
    assert out.status_code == 303
    assert max_age(the_session_cookie(out)) == 0
    assert auth_with(client).status_code == 401
    # The cookie store keeps no session server-side, but a logout record: a copy taken
    # before logout is dead too (in this process; in every instance with redis_url).
    assert auth_with(client, value).status_code == 401


def test_a_sign_in_time_in_the_future_is_not_trusted(client: TestClient) -> None:
    """Only the bridge can seal one, but a skewed clock must not stretch a session."""
    now = int(time.time())
    user = {"_id": "64f0c0ffee00000000000001_acme_x"}
    for at, status in ((now + 300, 200), (now + 301, 401), (2**53 - 1, 401)):
        value = seal_session({"sid": "s", "p": "acme", "u": user, "at": at})
        assert auth_with(client, value).status_code == status, at


def test_a_session_holding_any_json_number_is_served(client: TestClient) -> None:
    """A claim can be an integer past 64 bits: the session still reads and is not rewritten."""
    now = int(time.time())
    user = {"_id": "64f0c0ffee00000000000001_acme_x", "attributes": {"n": 2**70}}
    value = seal_session({"sid": "s", "p": "acme", "u": user, "at": now})
    answer = auth_with(client, value)
    assert answer.status_code == 200
    assert answer.json()["user"]["attributes"] == {"n": 2**70}
    assert not session_cookies(answer)


def test_sign_in_keeps_the_idp_sub_and_sid_for_back_channel_logout(
    client: TestClient, idp: FakeIdP
) -> None:
    idp.user = {**idp.user, "sid": "op-session-42"}
    signed_in_cookie(client, idp)
    session = session_of(client)
    assert session["sub"] == "user-1"
    assert session["idp_sid"] == "op-session-42"
    assert set(session) == {"sid", "p", "u", "at", "sub", "idp_sid"}
    hint = hint_of(client)  # the ID token, for logout, in a cookie of its own
    assert hint is not None
    assert jwt.decode(hint, options={"verify_signature": False})["sid"] == "op-session-42"


# --- tampering and secret rotation ----------------------------------------------------------


def test_a_tampered_cookie_is_signed_out_never_an_error(client: TestClient, idp: FakeIdP) -> None:
    value = signed_in_cookie(client, idp)
    assert auth_with(client, value).status_code == 200
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    for position in (0, 1, 3, 10, len(value) // 2, len(value) - 3, len(value) - 1):
        char = value[position]
        swapped = alphabet[(alphabet.find(char) + 1) % len(alphabet)]
        forged = value[:position] + swapped + value[position + 1 :]
        answer = auth_with(client, forged)
        assert answer.status_code == 401, (position, answer.text)
    for forged in (value[:-1], value + "A", value[: len(value) // 2], value.replace(".", "")):
        assert auth_with(client, forged).status_code == 401


def test_a_cookie_sealed_with_a_previous_secret_reads_and_is_resealed(
    make_client: Any, idp: FakeIdP, clock: Clock
) -> None:
    old = make_client(secret=SESSION_SECRET)
    old_value = signed_in_cookie(old, idp)
    rotated = make_client(secret=OTHER_SECRET, previous_secrets=[SESSION_SECRET])
    answer = auth_with(rotated, old_value)
    assert answer.status_code == 200
    resealed = the_session_cookie(answer)
    assert cookie_value(resealed) != old_value
    assert max_age(resealed) == MAX_AGE
    assert session_cookies(auth_with(rotated, cookie_value(resealed))) == []
    # The re-sealed cookie needs only the new secret.
    done = make_client(secret=OTHER_SECRET)
    assert auth_with(done, cookie_value(resealed)).status_code == 200
    assert auth_with(done, old_value).status_code == 401


def test_a_cookie_from_a_removed_secret_is_signed_out(make_client: Any, idp: FakeIdP) -> None:
    old = make_client(secret=SESSION_SECRET)
    old_value = signed_in_cookie(old, idp)
    rotated = make_client(secret=OTHER_SECRET, previous_secrets=[THIRD_SECRET])
    answer = auth_with(rotated, old_value)
    assert answer.status_code == 401
    assert max_age(the_session_cookie(answer)) == 0


def test_a_cookie_is_bound_to_its_cookie_name(make_client: Any, idp: FakeIdP) -> None:
    """The same secret under another cookie name (another deployment) opens nothing."""
    value = signed_in_cookie(make_client(), idp)
    other = make_client(cookie_name="other_session")
    answer = other.post("/auth", headers={"Origin": PUBLIC_URL, "Cookie": f"other_session={value}"})
    assert answer.status_code == 401


# --- size --------------------------------------------------------------------------------------


@pytest.mark.parametrize("https", [False, True], ids=["http", "https"])
def test_set_cookie_stays_under_4096_bytes_with_a_20kb_id_token_and_a_long_name(
    settings_data: dict[str, Any], idps: dict[str, FakeIdP], https: bool
) -> None:
    data = copy.deepcopy(settings_data)
    data["session"]["cookie_name"] = "c" * 64
    if https:
        data["server"]["public_url"] = "https://chat.acme.test"
        data["session"]["same_site"] = "none"
    idp = idps["acme"]
    idp.user = {
        **idp.user,
        "given_name": "A" * 300,
        "family_name": "L" * 300,
        "padding": "x" * 20000,
        "groups": [f"group-{i}-" + "g" * 40 for i in range(500)],
    }
    settings = parse_settings(data)
    with TestClient(
        create_app(settings, warm_up=False),
        base_url=settings.server.public_url,
        follow_redirects=False,
    ) as client:
        response = login(client, idp)
        assert response.status_code == 303
        cookies = [
            c for c in response.headers.get_list("set-cookie") if c.startswith("c" * 64 + "=")
        ]
        assert len(cookies) == 1
        assert len(cookies[0].encode()) <= 4000
        answer = client.post("/auth", headers={"Origin": settings.server.public_url})
        assert answer.status_code == 200
        assert answer.json()["user"]["firstname"] == "A" * 256


# --- [session] settings ---------------------------------------------------------------------


def session_problems(tmp_path: Path, **session: Any) -> list[str]:
    data = base_settings()
    data["session"].update(session)
    with pytest.raises(SettingsError) as caught:
        parse_settings(data, tmp_path)
    return caught.value.problems


def test_previous_secrets_resolve_like_the_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_OLD_SESSION_SECRET", OTHER_SECRET)
    (tmp_path / "older").write_text(THIRD_SECRET + "\n")
    data = base_settings()
    data["session"]["previous_secrets"] = ["env:TEST_OLD_SESSION_SECRET", "file:older"]
    session = parse_settings(data, tmp_path).session
    assert [s.get_secret_value() for s in session.previous_secrets] == [OTHER_SECRET, THIRD_SECRET]
    assert session.idle_timeout is None
    assert OTHER_SECRET not in repr(session) and THIRD_SECRET not in repr(session)


def test_bad_previous_secrets_are_one_line_each_naming_the_item(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOPE_NOT_SET", raising=False)
    lines = session_problems(
        tmp_path, previous_secrets=[OTHER_SECRET, "short-old-secret", "env:NOPE_NOT_SET"]
    )
    assert lines == [
        "session.previous_secrets[2]: environment variable NOPE_NOT_SET is not set",
        "session.previous_secrets[1]: must be at least 32 characters (use a random value)",
    ]
    assert not any("short-old-secret" in line for line in lines)
    assert session_problems(tmp_path, previous_secrets=[SESSION_SECRET]) == [
        "session.previous_secrets: must not repeat the current secret"
    ]


@pytest.mark.parametrize(
    ("session", "expected"),
    [
        (
            {"idle_timeout": 299},
            "session.idle_timeout: Input should be greater than or equal to 300",
        ),
        (
            {"idle_timeout": MAX_AGE},
            f"session.idle_timeout: must be shorter than max_age ({MAX_AGE} s), or left out: "
            "max_age alone already ends the session",
        ),
        (
            {"idle_timeout": 900, "max_age": 600},
            "session.idle_timeout: must be shorter than max_age (600 s), or left out: "
            "max_age alone already ends the session",
        ),
    ],
    ids=["below-5-minutes", "equal-to-max-age", "longer-than-max-age"],
)
def test_an_idle_timeout_must_be_shorter_than_max_age(
    tmp_path: Path, session: dict[str, Any], expected: str
) -> None:
    assert session_problems(tmp_path, **session) == [expected]


def test_session_helpers_never_edit_what_the_store_loaded_in_place() -> None:
    """The session middleware hands a route a copy of the loaded session's top level only,
    so the helpers must replace nested values, never edit them: the store still reads what
    it loaded (to forget a replaced session), and that must be what the cookie held."""
    from bridge import sessions

    flow = sessions.Flow("acme", "nonce", "verifier", "/", time.time())
    loaded: dict[str, Any] = {}
    sessions.add_flow(loaded, "state-1", flow)
    sessions.add_flow(loaded, "state-2", flow)
    before = copy.deepcopy(loaded)

    session = dict(loaded)
    assert sessions.pop_flow(session, "state-1") == flow
    sessions.add_flow(session, "state-3", flow)
    assert sorted(session["flows"]) == ["state-2", "state-3"]
    assert loaded == before
