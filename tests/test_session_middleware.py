"""The session middleware on tiny endpoints, with an injected clock: when it loads, enforces,
writes and deletes, and what it asks of a store."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from bridge.session_middleware import MAX_SET_COOKIE, SessionMiddleware
from bridge.session_store import CookieSealer, CookieStore, Loaded, SessionStore
from bridge.sessions import MAX_ID_TOKEN_HINT
from bridge.settings import SessionSettings

SECRET = "middleware-session-secret-0123456789-abcdef"
START = 1_700_000_000.0


@dataclass
class Clock:
    now: float = START

    def __call__(self) -> float:
        return self.now


async def read(request: Request) -> Response:
    return JSONResponse(dict(request.session))


async def write(request: Request) -> Response:
    request.session.update(await request.json())
    return JSONResponse(dict(request.session))


async def sign_in(request: Request) -> Response:
    """What ``bridge.sessions.sign_in`` leaves behind, at the injected clock's time."""
    request.session.clear()
    body = await request.json()
    request.session.update({"sid": body["sid"], "u": {"_id": "u"}, "at": body["at"]})
    if "h" in body:
        request.session["h"] = body["h"]
    return Response()


async def logout(request: Request) -> Response:
    """What the bridge's ``POST /logout`` does: reads the session (the hint), then ends it."""
    seen = dict(request.session)
    request.session.clear()
    return JSONResponse(seen)


async def clear(request: Request) -> Response:
    request.session.clear()
    return Response()


def app(clock: Clock, store: SessionStore | None = None, **session: Any) -> Starlette:
    settings = SessionSettings.model_validate({"secret": SECRET, **session})
    middleware = Middleware(
        SessionMiddleware, settings=settings, https_only=False, store=store, clock=clock
    )
    routes = [
        Route("/read", read),
        Route("/write", write, methods=["POST"]),
        Route("/sign-in", sign_in, methods=["POST"]),
        Route("/clear", clear, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
    ]
    return Starlette(routes=routes, middleware=[middleware])


def set_cookies(response: Any) -> list[str]:
    return [c for c in response.headers.get_list("set-cookie") if c.startswith("bridge_session=")]


def hint_cookies(response: Any) -> list[str]:
    return [
        c for c in response.headers.get_list("set-cookie") if c.startswith("bridge_session_logout=")
    ]


def opened(client: TestClient) -> dict[str, Any]:
    """The session cookie's own content (its ``d``), as the middleware sealed it."""
    sealer = CookieSealer(SECRET, cookie_name="bridge_session")
    plaintext = sealer.open(client.cookies.get("bridge_session", path="/") or "")
    assert plaintext is not None
    return json.loads(plaintext[0])["d"]  # type: ignore[no-any-return]


ID_TOKEN = "eyJhbGciOiJSUzI1NiJ9." + "p" * 900 + ".s"


def test_a_session_lives_in_scope_as_a_dict_and_comes_back(client_clock: Any) -> None:
    client, _ = client_clock()
    first = client.post("/write", json={"k": "v"})
    assert first.json() == {"k": "v"}
    assert len(set_cookies(first)) == 1
    again = client.get("/read")
    assert again.json() == {"k": "v"}
    assert set_cookies(again) == [], "unchanged: not written"


def test_the_cookie_carries_exactly_the_configured_attributes(client_clock: Any) -> None:
    client, clock = client_clock()
    client.post("/sign-in", json={"sid": "a", "at": clock.now})
    (cookie,) = set_cookies(client.post("/write", json={"k": "v"}))
    value = client.cookies.get("bridge_session")
    assert cookie == f"bridge_session={value}; Max-Age=28800; Path=/; HttpOnly; SameSite=Lax"


def test_the_longest_id_token_hint_fits_its_cookie_with_the_longest_name_and_max_age(
    clock: Clock,
) -> None:
    settings = SessionSettings.model_validate(
        {"secret": SECRET, "cookie_name": "c" * 64, "same_site": "none", "max_age": 2592000}
    )
    inner = Starlette(routes=[Route("/sign-in", sign_in, methods=["POST"])])
    wrapped = SessionMiddleware(inner, settings=settings, https_only=True, clock=clock)
    hint = "h" * MAX_ID_TOKEN_HINT
    with TestClient(wrapped, base_url="https://chat.acme.test") as client:
        answer = client.post("/sign-in", json={"sid": "s" * 22, "at": clock.now, "h": hint})
    (cookie,) = [c for c in answer.headers.get_list("set-cookie") if "_logout=" in c]
    assert cookie.endswith("; Max-Age=2592000; Path=/logout; HttpOnly; SameSite=None; Secure")
    assert len(cookie.encode()) <= MAX_SET_COOKIE
    assert "; Max-Age=0;" not in cookie


def test_same_site_none_is_secure(clock: Clock) -> None:
    settings = SessionSettings.model_validate({"secret": SECRET, "same_site": "none"})
    inner = Starlette(routes=[Route("/write", write, methods=["POST"])])
    wrapped = SessionMiddleware(inner, settings=settings, https_only=True, clock=clock)
    with TestClient(wrapped, base_url="https://chat.acme.test") as client:
        (cookie,) = set_cookies(client.post("/write", json={"k": "v"}))
    assert cookie.endswith("; Max-Age=600; Path=/; HttpOnly; SameSite=None; Secure")


def test_the_absolute_limit_runs_from_sign_in_on_the_injected_clock(client_clock: Any) -> None:
    client, clock = client_clock()
    client.post("/sign-in", json={"sid": "a", "at": clock.now})
    value = client.cookies.get("bridge_session")
    clock.now += 28800 - 1
    assert client.get("/read", headers={"Cookie": f"bridge_session={value}"}).json()["sid"] == "a"
    clock.now += 1
    ended = client.get("/read", headers={"Cookie": f"bridge_session={value}"})
    assert ended.json() == {}
    assert set_cookies(ended) == ["bridge_session=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax"]


def test_a_bad_cookie_is_deleted_and_no_cookie_is_left_alone(client_clock: Any) -> None:
    client, _ = client_clock()
    assert set_cookies(client.get("/read")) == []
    bad = client.get("/read", headers={"Cookie": "bridge_session=v1.AAAA"})
    assert bad.status_code == 200
    assert set_cookies(bad) == ["bridge_session=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax"]


@pytest.mark.parametrize(
    "header",
    [
        "bridge_session",  # a name alone is a value with an empty name, as browsers read it
        "other=1; bridge_session ; more=2",
        "bridge_sessions=v1.AAAA; xbridge_session=v1.AAAA",
        "bridge_session=",
        'bridge_session=""',
    ],
)
def test_only_a_cookie_of_the_session_name_with_a_value_is_read(
    client_clock: Any, header: str
) -> None:
    client, _ = client_clock()
    response = client.get("/read", headers={"Cookie": header})
    assert response.json() == {}
    assert set_cookies(response) == [], "no cookie of ours came, so none is deleted"


def test_a_quoted_and_spaced_cookie_of_ours_is_read_as_the_browser_sent_it(
    client_clock: Any,
) -> None:
    client, clock = client_clock()
    client.post("/sign-in", json={"sid": "a", "at": clock.now})
    ours = client.cookies.get("bridge_session")
    client.cookies.clear()
    header = f'theme=dark;  bridge_session = "{ours}" ;lang=it'
    response = client.get("/read", headers={"Cookie": header})
    assert response.json() == {"sid": "a", "u": {"_id": "u"}, "at": clock.now}
    assert set_cookies(response) == []


def test_a_session_too_large_is_not_kept_and_the_answer_still_goes_out(
    client_clock: Any, caplog: pytest.LogCaptureFixture
) -> None:
    client, _ = client_clock()
    caplog.set_level(logging.WARNING, logger="bridge.sessions")
    answer = client.post("/write", json={"big": "é" * 3000})
    assert answer.status_code == 200
    assert set_cookies(answer) == []
    assert "é" not in caplog.text
    assert "session not kept, the visitor stays signed out" in caplog.text


def test_the_largest_cookie_kept_fills_but_never_passes_the_set_cookie_budget(
    clock: Clock,
) -> None:
    """The longest name, the longest Max-Age and every attribute: still at most 4000 bytes."""
    settings = SessionSettings.model_validate(
        {"secret": SECRET, "cookie_name": "c" * 64, "same_site": "none", "max_age": 2592000}
    )
    inner = Starlette(
        routes=[
            Route("/sign-in", sign_in, methods=["POST"]),
            Route("/write", write, methods=["POST"]),
        ]
    )
    wrapped = SessionMiddleware(inner, settings=settings, https_only=True, clock=clock)

    def cookie_for(size: int) -> str | None:
        with TestClient(wrapped, base_url="https://chat.acme.test") as client:
            client.post("/sign-in", json={"sid": "a", "at": clock.now})
            answer = client.post("/write", json={"big": "x" * size})
            assert answer.status_code == 200
            (cookie,) = [c for c in answer.headers.get_list("set-cookie") if c[64] == "="]
            return None if "; Max-Age=0;" in cookie else cookie

    low, high = 0, 4000  # invariant: cookie_for(low) is kept, cookie_for(high) deletes it
    assert cookie_for(low) is not None and cookie_for(high) is None
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if cookie_for(middle) else (low, middle)
    largest = cookie_for(low)
    assert largest is not None
    assert "; Max-Age=2592000; Path=/; HttpOnly; SameSite=None; Secure" in largest
    assert MAX_SET_COOKIE - 4 < len(largest.encode()) <= MAX_SET_COOKIE == 4000


# --- what the middleware asks of a store ------------------------------------------------------


@dataclass
class Ticket(Loaded):
    ticket: str = ""


@dataclass
class RecordingStore(SessionStore):
    """A server-side store in a dict, recording each call the middleware makes."""

    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[tuple[str, Any]] = field(default_factory=list)

    async def load(self, cookie: str) -> Loaded | None:
        self.calls.append(("load", cookie))
        data = self.sessions.get(cookie)
        return None if data is None else Ticket(dict(data), ticket=cookie)

    async def save(
        self, data: Mapping[str, Any], *, ttl: int, previous: Loaded | None, renew: bool
    ) -> str:
        self.calls.append(("save", (ttl, renew)))
        ticket = previous.ticket if isinstance(previous, Ticket) and not renew else ""
        if not ticket:
            if isinstance(previous, Ticket):
                self.sessions.pop(previous.ticket, None)
            ticket = f"t{len(self.calls)}"
        self.sessions[ticket] = dict(data)
        return ticket

    async def clear(self, previous: Loaded) -> None:
        assert isinstance(previous, Ticket)
        self.calls.append(("clear", previous.ticket))
        self.sessions.pop(previous.ticket, None)


def test_a_store_is_asked_to_renew_at_sign_in_and_to_clear_at_sign_out(clock: Clock) -> None:
    store = RecordingStore()
    with TestClient(app(clock, store, idle_timeout=600)) as client:
        client.post("/write", json={"flows": {}})
        assert store.calls == [("save", (600, True))]
        first = client.cookies.get("bridge_session")
        client.post("/sign-in", json={"sid": "a", "at": clock.now})
        assert store.calls[-2:] == [("load", first), ("save", (600, True))]
        signed_in = client.cookies.get("bridge_session")
        assert signed_in != first and first not in store.sessions, "a new ticket, the old gone"
        clock.now += 59
        client.get("/read")
        assert store.calls[-1] == ("load", signed_in), "idle refresh at most once a minute"
        clock.now += 1
        client.get("/read")
        assert store.calls[-1] == ("save", (600, False)), "same session, same ticket"
        client.post("/clear")
        assert store.calls[-1] == ("clear", signed_in)
        assert store.sessions == {}


# --- fixtures -----------------------------------------------------------------------------------


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def client_clock(clock: Clock) -> Any:
    clients: list[TestClient] = []

    def make(**session: Any) -> tuple[TestClient, Clock]:
        client = TestClient(app(clock, **session))
        client.__enter__()
        clients.append(client)
        return client, clock

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.mark.parametrize("order", ["tossed_last", "tossed_first"])
def test_a_second_cookie_of_the_same_name_does_not_sign_the_visitor_out(
    client_clock: Any, order: str
) -> None:
    """A sibling sub-domain can set ``bridge_session`` for the parent domain (cookie tossing):
    the browser then sends both, and the one the bridge sealed is still the session."""
    client, clock = client_clock()
    client.post("/sign-in", json={"sid": "a", "at": clock.now})
    ours = client.cookies.get("bridge_session")
    client.cookies.clear()
    pair = [f"bridge_session={ours}", "bridge_session=tossed-by-a-sibling-domain"]
    if order == "tossed_first":
        pair.reverse()
    response = client.get("/read", headers={"cookie": "; ".join(pair)})
    assert response.json() == {"sid": "a", "u": {"_id": "u"}, "at": clock.now}
    assert set_cookies(response) == [], "the sealed cookie is neither deleted nor rewritten"


# --- the ID token for logout's id_token_hint, in a cookie of its own -----------------------


def test_the_id_token_hint_rides_in_a_cookie_only_logout_receives(client_clock: Any) -> None:
    """Every request carries and opens the session cookie (every ``POST /auth``): the ID
    token, which only ``POST /logout`` needs, is sealed in a second cookie whose Path
    keeps it to /logout, bound to the session it came with."""
    client, clock = client_clock()
    signed_in = client.post("/sign-in", json={"sid": "a", "at": clock.now, "h": ID_TOKEN})
    (hint,) = hint_cookies(signed_in)
    value = client.cookies.get("bridge_session_logout", path="/logout")
    assert hint == (
        f"bridge_session_logout={value}; Max-Age=28800; Path=/logout; HttpOnly; SameSite=Lax"
    )
    assert opened(client) == {"sid": "a", "u": {"_id": "u"}, "at": clock.now}
    assert ID_TOKEN not in value  # sealed, not merely moved
    assert "h" not in client.get("/read").json()  # the browser does not send it there
    seen = client.post("/logout").json()
    assert seen["h"] == ID_TOKEN and seen["sid"] == "a"


def test_logout_deletes_both_cookies(client_clock: Any) -> None:
    client, clock = client_clock()
    client.post("/sign-in", json={"sid": "a", "at": clock.now, "h": ID_TOKEN})
    ended = client.post("/logout")
    assert set_cookies(ended) == ["bridge_session=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax"]
    assert hint_cookies(ended) == [
        "bridge_session_logout=; Max-Age=0; Path=/logout; HttpOnly; SameSite=Lax"
    ]
    assert not client.cookies


def test_a_hint_is_used_only_with_the_session_it_was_sealed_with(client_clock: Any) -> None:
    client, clock = client_clock()
    client.post("/sign-in", json={"sid": "a", "at": clock.now, "h": ID_TOKEN})
    first = client.cookies.get("bridge_session_logout", path="/logout")
    renewed = client.post("/sign-in", json={"sid": "b", "at": clock.now})
    assert hint_cookies(renewed) == [
        "bridge_session_logout=; Max-Age=0; Path=/logout; HttpOnly; SameSite=Lax"
    ], "a new sign-in without a hint removes the last one's"
    client.cookies.set("bridge_session_logout", first, path="/logout")
    seen = client.post("/logout").json()
    assert seen["sid"] == "b" and "h" not in seen


def test_the_hint_cookie_is_opened_on_logout_only(client_clock: Any) -> None:
    client, clock = client_clock()
    client.post("/sign-in", json={"sid": "a", "at": clock.now, "h": ID_TOKEN})
    value = client.cookies.get("bridge_session_logout", path="/logout")
    session = client.cookies.get("bridge_session", path="/")
    header = f"bridge_session={session}; bridge_session_logout={value}"
    assert "h" not in client.get("/read", headers={"Cookie": header}).json()


def test_the_hint_cookie_lasts_as_long_as_the_sign_in_can(client_clock: Any) -> None:
    """With an idle limit the session cookie's Max-Age is the idle window, renewed by
    activity; the hint is written once, so it lasts until the absolute end."""
    client, clock = client_clock(max_age=3600, idle_timeout=600)
    clock.now += 0.5
    signed_in = client.post("/sign-in", json={"sid": "a", "at": clock.now - 100, "h": ID_TOKEN})
    (cookie,) = set_cookies(signed_in)
    (hint,) = hint_cookies(signed_in)
    assert "; Max-Age=500;" in cookie
    assert "; Max-Age=3500;" in hint


def test_a_hint_too_large_for_a_cookie_is_left_out(client_clock: Any) -> None:
    client, clock = client_clock()
    signed_in = client.post("/sign-in", json={"sid": "a", "at": clock.now, "h": "x" * 4000})
    assert hint_cookies(signed_in) == [
        "bridge_session_logout=; Max-Age=0; Path=/logout; HttpOnly; SameSite=Lax"
    ], "none kept, and none of an earlier session left"
    assert len(set_cookies(signed_in)) == 1
    assert "h" not in opened(client)
    seen = client.post("/logout").json()
    assert seen["sid"] == "a" and "h" not in seen


def test_a_session_sealed_with_the_hint_inside_moves_it_out(client_clock: Any) -> None:
    """Sessions sealed before the hint had its own cookie: on their next request."""
    client, clock = client_clock()
    store = CookieStore(
        CookieSealer(SECRET, cookie_name="bridge_session"), max_value=4000, clock=clock
    )
    data = {"sid": "a", "u": {"_id": "u"}, "at": clock.now, "h": ID_TOKEN}
    old = asyncio.run(store.save(data, ttl=600, previous=None, renew=True))
    moved = client.get("/read", headers={"Cookie": f"bridge_session={old}"})
    assert len(set_cookies(moved)) == 1 and len(hint_cookies(moved)) == 1
    assert opened(client) == {"sid": "a", "u": {"_id": "u"}, "at": clock.now}
    assert set_cookies(client.get("/read")) == [], "moved once"
    assert client.post("/logout").json()["h"] == ID_TOKEN
