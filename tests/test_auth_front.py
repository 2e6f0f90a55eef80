"""POST /auth in front of Starlette's stack (issue 12): every page load that shows the chat
asks it, so it skips the framework's router, exception layers and request objects, and
keeps everything else: the same edge headers, session rules, checks and answers as any
route. Each kind of request is sent both ways on one app and must get the same answer."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from starlette.applications import Starlette
from starlette.routing import Router
from starlette.testclient import TestClient

from bridge.settings import parse_settings
from bridge.web import create_app
from tests.conftest import PUBLIC_URL, TILEDESK_SECRET, base_settings, login
from tests.idp import FakeIdP

SHOP = "https://shop.acme.test"
#: Differ by design between two answers: a new id, date and token every time.
VOLATILE_HEADERS = {"x-request-id", "date"}


@pytest.fixture
def app(idps: dict[str, FakeIdP]) -> Iterator[Starlette]:
    data = base_settings()
    data["sites"] = {SHOP: {}}
    yield create_app(parse_settings(data), warm_up=False)


def through_router(app: Starlette) -> Any:
    """The app as it would answer without its front: Starlette's own stack only."""

    async def asgi(scope: Any, receive: Any, send: Any) -> None:
        await Starlette.__call__(app, scope, receive, send)

    return asgi


def browser(app: Any) -> TestClient:
    client = TestClient(app, base_url=PUBLIC_URL, follow_redirects=False)
    client.__enter__()
    return client


def auth_counts(app: Starlette) -> dict[str, float]:
    """/auth's outcomes and the error codes, as /metrics shows them."""
    samples = {}
    for line in app.state.bridge.metrics.render().decode().splitlines():
        if line.startswith(("bridge_auth_requests_total{", "bridge_errors_total{")):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def answer(client: TestClient, app: Starlette, cookie: str | None, **request: Any) -> Any:
    """What a person's browser would see, minus what differs every time by design."""
    client.cookies.clear()
    if cookie is not None:
        client.cookies.set("bridge_session", cookie)
    before = auth_counts(app)
    response = client.post("/auth", **request)
    after = auth_counts(app)
    headers = {k: v for k, v in response.headers.items() if k not in VOLATILE_HEADERS}
    set_cookie = headers.pop("set-cookie", None)
    if set_cookie is not None:  # a new sealed value each time: keep its shape
        name_value, _, attributes = set_cookie.partition(";")
        name, _, value = name_value.partition("=")
        set_cookie = (name, "deleted" if not value else "sealed", attributes)
    body = response.json()
    if "token" in body:
        claims = jwt.decode(
            body["token"].removeprefix("JWT "),
            TILEDESK_SECRET,
            algorithms=["HS256"],
            audience=claims_audience(body),
        )
        assert claims["exp"] - claims["iat"] == app.state.bridge.settings.tiledesk.token_ttl
        assert body["expires_at"] == claims["exp"]
        kept = {k: v for k, v in claims.items() if k not in ("jti", "iat", "exp")}
        body = {**body, "token": kept}
        body.pop("expires_at")
    counted = {k: v - before.get(k, 0.0) for k, v in after.items() if v != before.get(k)}
    return response.status_code, headers, set_cookie, body, counted


def claims_audience(body: dict[str, Any]) -> str:
    project = body["user"]["_id"].split("_", 1)[0]
    return f"https://tiledesk.com/projects/{project}"


REQUESTS: dict[str, tuple[bool, dict[str, Any]]] = {
    # name: (signed in?, the request)
    "anonymous": (False, {"headers": {"Origin": PUBLIC_URL}}),
    "same origin": (True, {"headers": {"Origin": PUBLIC_URL}}),
    "no Origin, no Sec-Fetch-Site": (True, {}),
    "Origin null from this site's own form": (
        True,
        {"headers": {"Origin": "null", "Sec-Fetch-Site": "same-origin"}},
    ),
    "Origin null from elsewhere": (True, {"headers": {"Origin": "null"}}),
    "an allowed site": (True, {"headers": {"Origin": SHOP}}),
    "an allowed site, spelled in capitals": (True, {"headers": {"Origin": SHOP.upper()}}),
    "another site": (True, {"headers": {"Origin": "https://evil.test"}}),
    "no Origin, cross-site": (True, {"headers": {"Sec-Fetch-Site": "cross-site"}}),
    "an allowed site, a handle that is no handle": (
        True,
        {"headers": {"Origin": SHOP}, "json": {"handle": "x", "verifier": "y"}},
    ),
    "an allowed site, a body that is no JSON": (
        True,
        {"headers": {"Origin": SHOP, "Content-Type": "application/json"}, "content": b"{"},
    ),
    "an allowed site, a body too long": (
        True,
        {"headers": {"Origin": SHOP}, "json": {"handle": "h" * 2000}},
    ),
    "an allowed site, an unknown handle": (
        True,
        {"headers": {"Origin": SHOP}, "json": {"handle": "A" * 43, "verifier": "B" * 64}},
    ),
    "a cookie that is not ours": (None, {"headers": {"Origin": PUBLIC_URL}}),
}


@pytest.mark.parametrize("name", list(REQUESTS))
def test_post_auth_answers_the_same_in_front_as_through_the_router(
    app: Starlette, idps: dict[str, FakeIdP], name: str
) -> None:
    signed_in, request = REQUESTS[name]
    front, router = browser(app), browser(through_router(app))
    cookie = None
    if signed_in:
        login(front, idps["acme"])
        cookie = front.cookies["bridge_session"]
    elif signed_in is None:
        cookie = "v1.not-a-session-of-ours"
    seen_front = answer(front, app, cookie, **request)
    seen_router = answer(router, app, cookie, **request)
    assert seen_front == seen_router
    status, headers, _, body, counted = seen_front
    assert headers["cache-control"] == "no-store"
    assert headers["content-security-policy"].startswith("default-src 'none'")
    # Each answer counted once: its /auth outcome, or its error code, or both for a refusal.
    assert set(counted.values()) == {1.0}
    assert len(counted) == (2 if status == 403 else 1)
    if status == 200:
        assert set(body) == {"token", "user"}
        assert body["token"]["_id"] == body["user"]["_id"]


def test_post_auth_is_answered_without_the_router(
    app: Starlette, idps: dict[str, FakeIdP], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    original = Router.__call__

    async def counting(self: Router, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            calls.append(f"{scope['method']} {scope['path']}")
        await original(self, scope, receive, send)

    monkeypatch.setattr(Router, "__call__", counting)
    client = browser(app)
    login(client, idps["acme"])
    calls.clear()
    signed_in = client.post("/auth", headers={"Origin": PUBLIC_URL})
    anonymous = TestClient(app, base_url=PUBLIC_URL).post("/auth")
    refused = client.post("/auth", headers={"Origin": "https://evil.test"})
    assert [signed_in.status_code, anonymous.status_code, refused.status_code] == [200, 401, 403]
    assert calls == []
    # Every other route, and /auth's other methods, still go through the router.
    assert client.options("/auth", headers={"Origin": SHOP}).status_code == 204
    wrong_method = client.get("/auth")
    assert wrong_method.status_code == 405
    assert wrong_method.headers["allow"] == "POST"
    assert client.get("/healthz").status_code == 200
    assert calls == ["OPTIONS /auth", "GET /auth", "GET /healthz"]


def test_an_error_inside_post_auth_is_the_usual_error_answer(
    app: Starlette, idps: dict[str, FakeIdP], monkeypatch: pytest.MonkeyPatch
) -> None:
    client = browser(app)
    login(client, idps["acme"])

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug in minting, with a secret in its text: s3cret")

    monkeypatch.setattr("bridge.tiledesk.Minter.mint", broken)
    response = client.post("/auth", headers={"Origin": PUBLIC_URL})
    assert response.status_code == 500
    assert response.json() == {"error": "internal_error"}
    assert "s3cret" not in response.text
    assert response.headers["x-content-type-options"] == "nosniff"
    assert json.loads(response.text) == {"error": "internal_error"}


def app_with(**sections: dict[str, Any]) -> Starlette:
    data = base_settings()
    data["sites"] = {SHOP: {}}
    for name, values in sections.items():
        data[name] = {**data.get(name, {}), **values}
    return create_app(parse_settings(data), warm_up=False)


def signed_in_ago(app: Starlette, idp: FakeIdP, seconds: int) -> str:
    """A session cookie of a sign-in made ``seconds`` ago, last seen then."""
    client = browser(app)
    login(client, idp)
    store = app.state.bridge.session_store
    loaded = asyncio.run(store.load(client.cookies["bridge_session"]))
    assert loaded is not None
    data = {**loaded.data, "at": loaded.data["at"] - seconds}
    data.pop("seen", None)
    return str(asyncio.run(store.save(data, ttl=3600, previous=None, renew=False)))


@pytest.mark.parametrize(
    ("seconds_ago", "status", "cookie"),
    [(0, 200, None), (400, 200, "sealed"), (3700, 401, "deleted")],
    ids=["fresh: no cookie written", "idle deadline moved: rewritten", "expired: deleted"],
)
def test_post_auth_keeps_the_session_rules_the_same_in_front_as_through_the_router(
    idps: dict[str, FakeIdP],
    seconds_ago: int,
    status: int,
    cookie: str | None,
) -> None:
    """The session's cookie on an /auth answer: none while nothing changed, a new one when
    the idle deadline moves, a deletion once the sign-in is over (max_age one hour)."""
    app = app_with(session={"max_age": 3600, "idle_timeout": 1800})
    value = signed_in_ago(app, idps["acme"], seconds_ago)
    front, router = browser(app), browser(through_router(app))
    seen_front = answer(front, app, value, headers={"Origin": PUBLIC_URL})
    seen_router = answer(router, app, value, headers={"Origin": PUBLIC_URL})
    assert seen_front == seen_router
    assert seen_front[0] == status
    set_cookie = seen_front[2]
    if cookie is None:
        assert set_cookie is None
    else:
        assert set_cookie is not None
        assert set_cookie[:2] == ("bridge_session", cookie)
        assert "HttpOnly" in set_cookie[2]


def test_post_auth_trusts_a_proxy_s_request_id_the_same_in_front_as_through_the_router(
    idps: dict[str, FakeIdP],
) -> None:
    """The request id is read from where the request came from (the trusted proxy) before
    X-Forwarded-For names the visitor; one from anyone else is replaced."""
    app = app_with(server={"trusted_proxies": ["127.0.0.1"]})
    forwarded = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}
    for asgi in (app, through_router(app)):
        proxy = TestClient(asgi, base_url=PUBLIC_URL, client=("127.0.0.1", 40000))
        stranger = TestClient(asgi, base_url=PUBLIC_URL, client=("198.51.100.7", 40000))
        headers = {"Origin": PUBLIC_URL, "X-Request-ID": "req-42", **forwarded}
        assert proxy.post("/auth", headers=headers).headers["x-request-id"] == "req-42"
        replaced = stranger.post("/auth", headers=headers).headers["x-request-id"]
        assert replaced != "req-42"
        assert len(replaced) == 16
