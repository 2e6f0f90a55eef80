"""Issue 4: the whole sign-in, in Chromium, through a real OpenID Provider's own pages.

Every test signs in through the OP's login (and, on a new OP session, consent) page, lands on the
bridge's widget page and checks what the Tiledesk widget stand-in received.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest

from .conftest import Bridge

pytestmark = pytest.mark.e2e

PASSWORD = "any password: the OP's development login takes any"
SIGNED_IN_STATUS = "Chat connected."


# --- helpers -----------------------------------------------------------------------------------


class Watch:
    """What a page did, in order, across navigations: requests, console messages, errors."""

    def __init__(self, page: Any, bridge: Bridge) -> None:
        self.events: list[tuple[str, str]] = []
        self.page_errors: list[str] = []
        self.auth_bodies: list[dict[str, Any]] = []
        self._bridge = bridge
        page.on("request", lambda r: self.events.append(("request", f"{r.method} {r.url}")))
        page.on("console", lambda m: self.events.append(("console", m.text)))
        page.on("pageerror", lambda e: self.page_errors.append(str(e)))
        page.on("response", self._response)

    def _response(self, response: Any) -> None:
        if response.request.method == "POST" and response.url == f"{self._bridge.url}/auth":
            try:
                self.auth_bodies.append({"status": response.status, "body": response.json()})
            except Exception as exc:  # the page navigated away before the body was read
                self.auth_bodies.append({"status": response.status, "body": repr(exc)})

    def requests(self, method: str, path: str) -> list[str]:
        wanted = f"{method} {self._bridge.url}{path}"
        return [
            text for kind, text in self.events if kind == "request" and text.split("?")[0] == wanted
        ]


def op_login(page: Any, bridge: Bridge, username: str) -> None:
    """Go through the OP's own login page and, when it asks, its consent page."""
    page.wait_for_url(f"{bridge.op.issuer}/interaction/**")
    assert page.locator("input[name=login]").is_visible(), "the OP's login page was not shown"
    page.fill("input[name=login]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: url.startswith(bridge.url) or "/interaction/" in url)
    if page.url.startswith(bridge.op.issuer):
        page.wait_for_selector("input[name=prompt][value=consent]", state="attached")
        page.click("button[type=submit]")  # "Continue": grant the requested scopes
    page.wait_for_url(lambda url: url.startswith(bridge.url))


def sign_in(page: Any, bridge: Bridge, username: str, *, javascript: bool = True) -> None:
    page.goto(f"{bridge.url}/")
    page.click('a.signin[href="/login/acme"]')
    op_login(page, bridge, username)
    page.wait_for_url(f"{bridge.url}/")
    if javascript:
        page.wait_for_function(
            "s => document.getElementById('chat-status').textContent === s", arg=SIGNED_IN_STATUS
        )


def widget_calls(page: Any, method: str) -> list[list[Any]]:
    return [call for call in page.evaluate("window.__tiledeskCalls || []") if call[0] == method]


def the_token(page: Any) -> str:
    calls = widget_calls(page, "signInWithCustomToken")
    assert len(calls) == 1, calls
    assert len(calls[0]) == 2, f"signInWithCustomToken takes one argument: {calls[0]}"
    return str(calls[0][1])


def verify(bridge: Bridge, token: str) -> dict[str, Any]:
    assert token.startswith("JWT "), token
    assert jwt.get_unverified_header(token[4:])["alg"] == "HS256"
    claims: dict[str, Any] = jwt.decode(
        token[4:], bridge.tiledesk_secret, algorithms=["HS256"], audience=bridge.audience
    )
    return claims


def finish_op_logout(page: Any, bridge: Bridge) -> None:
    """Follow RP-initiated logout at the OP until the browser is back on the bridge."""
    page.wait_for_url(lambda url: url.startswith(bridge.url) or url.startswith(bridge.op.issuer))
    if page.url.startswith(bridge.op.issuer):
        button = page.locator("#op-logout, form[action*='/session/end/confirm'] button")
        if not page.url.startswith(bridge.url) and button.count():
            # The page may have submitted itself (id_token_hint given) in the meantime.
            with contextlib.suppress(Exception):
                button.first.click(timeout=2_000)
    try:
        page.wait_for_url(f"{bridge.url}/")
    except Exception as exc:
        raise AssertionError(f"logout ended at {page.url}:\n{page.content()[:3000]}") from exc


def no_horizontal_scroll(page: Any) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


# --- scenarios ---------------------------------------------------------------------------------


def userinfo_calls(bridge: Bridge) -> int:
    """How many userinfo calls the bridge has timed (its /metrics), over every sign-in."""
    text = httpx.get(f"{bridge.url}/metrics", timeout=10).text
    match = re.search(
        r'^bridge_idp_request_seconds_count\{endpoint="userinfo",provider="acme"\} (\S+)$',
        text,
        re.M,
    )
    return int(float(match.group(1))) if match else 0


def test_alice_signs_in_at_the_op_and_the_widget_gets_her_tiledesk_token(
    bridge: Bridge, new_context: Callable[..., Any], artifacts: Path
) -> None:
    page = new_context(viewport={"width": 1280, "height": 800}).new_page()
    watch = Watch(page, bridge)
    asked = userinfo_calls(bridge)
    sign_in(page, bridge, "alice")

    assert page.locator("#user-name").inner_text() == "Alice Liddell"
    # userinfo = true in this suite's settings: the certified OP's userinfo, asked once.
    assert userinfo_calls(bridge) == asked + 1
    token = the_token(page)
    assert [entry["status"] for entry in watch.auth_bodies] == [200]
    answer = watch.auth_bodies[0]["body"]
    assert answer["token"] == token, "the widget must get exactly the token /auth answered"
    claims = verify(bridge, token)
    assert claims["sub"] == "userexternal"
    assert claims["_id"].startswith(f"{bridge.project_id}_acme_")
    assert re.fullmatch(r"[A-Za-z0-9_|:@-]{1,128}", claims["_id"])
    assert "role" not in claims
    assert "nbf" not in claims
    assert claims["email"] == "alice@acme.test"
    assert claims["firstname"] == "Alice"
    assert claims["lastname"] == "Liddell"
    assert claims["attributes"]["groups"] == ["support"]
    assert claims["exp"] - claims["iat"] == 28800
    assert claims["jti"]
    assert answer["expires_at"] == claims["exp"]

    seen = page.evaluate("window.__tiledeskSettingsSeen")
    assert seen["projectid"] == bridge.project_id
    assert seen["autoStart"] is False
    assert page.evaluate("window.__widgetErrors") == []
    assert page.evaluate("window.__widgetState.user_id") == claims["_id"]
    assert watch.page_errors == []
    page.screenshot(path=artifacts / "signed-in.png", full_page=True)


def test_the_same_op_user_gets_the_same_chat_id_on_another_browser_and_bob_another(
    bridge: Bridge, new_context: Callable[..., Any]
) -> None:
    ids = []
    for username in ("alice", "alice", "bob"):
        page = new_context().new_page()
        sign_in(page, bridge, username)
        ids.append(verify(bridge, the_token(page))["_id"])
    assert ids[0] == ids[1]
    assert ids[2] != ids[0]
    assert ids[2].startswith(f"{bridge.project_id}_acme_")


def test_sign_out_signs_the_widget_out_first_and_ends_the_op_session(
    bridge: Bridge, new_context: Callable[..., Any]
) -> None:
    context = new_context()
    page = context.new_page()
    watch = Watch(page, bridge)
    sign_in(page, bridge, "alice")
    assert widget_calls(page, "logout") == []
    # The ID token for logout's id_token_hint: its own cookie, which Chromium sends to
    # /logout alone, so the session cookie every POST /auth carries stays small.
    (hint,) = [c for c in context.cookies() if c["name"] == "bridge_session_logout"]
    assert (hint["path"], hint["httpOnly"], hint["sameSite"]) == ("/logout", True, "Lax")

    page.click("form#signout button[type=submit]")
    finish_op_logout(page, bridge)

    events = [text for _, text in watch.events]
    logged_out_at = events.index("[tiledesk] logout")  # the stand-in logs each call
    posted_at = events.index(f"POST {bridge.url}/logout")
    assert logged_out_at < posted_at, "the widget must be signed out before the page leaves"

    end_session = [
        text
        for kind, text in watch.events
        if kind == "request" and text.split("?")[0] == f"GET {bridge.op.issuer}/session/end"
    ]
    assert len(end_session) == 1, watch.events
    query = parse_qs(urlsplit(end_session[0].split(" ", 1)[1]).query)
    assert query["post_logout_redirect_uri"] == [f"{bridge.url}/"]
    (id_token,) = query["id_token_hint"]
    assert jwt.decode(id_token, options={"verify_signature": False})["aud"] == bridge.op.client_id
    assert not [c for c in context.cookies() if c["name"].startswith("bridge_session")]

    assert page.locator('a.signin[href="/login/acme"]').is_visible()
    status = page.evaluate(
        "fetch('/auth', {method: 'POST'}).then(r => r.json().then(b => [r.status, b]))"
    )
    assert status == [401, {"error": "not_signed_in"}]
    outside = context.request.post(f"{bridge.url}/auth", headers={"Origin": bridge.url})
    assert outside.status == 401
    assert outside.json() == {"error": "not_signed_in"}

    # The OP session is over: signing in again shows the OP's login page, not a silent sign-in.
    page.click('a.signin[href="/login/acme"]')
    page.wait_for_url(f"{bridge.op.issuer}/interaction/**")
    assert page.locator("input[name=login]").is_visible()
    assert watch.page_errors == []


def test_signing_out_before_the_widget_has_started_still_signs_the_widget_out(
    bridge: Bridge, new_context: Callable[..., Any]
) -> None:
    """The real loader starts on the first interaction or after 5 s, and a call queued before
    that dies with the page: the widget's stored token would outlive the bridge session."""
    context = new_context()
    page = context.new_page()
    watch = Watch(page, bridge)
    sign_in(page, bridge, "bob")
    context.add_init_script("window.__widgetStartDelayMs = 800;")
    reloaded = len(watch.events)
    page.reload()
    page.click("form#signout button[type=submit]")
    finish_op_logout(page, bridge)
    page.wait_for_function("window.__widgetState && window.__widgetState.started")
    page.wait_for_timeout(200)

    later = [text for kind, text in watch.events[reloaded:] if kind == "console"]
    assert "[tiledesk] logout" in later, (
        "no page told the widget to log out after the visitor signed out: " + repr(later)
    )


def test_a_user_outside_the_allowed_email_domains_sees_access_denied(
    bridge: Bridge, new_context: Callable[..., Any], artifacts: Path
) -> None:
    context = new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.goto(f"{bridge.url}/")
    page.click('a.signin[href="/login/acme"]')
    with page.expect_response(lambda r: r.url.startswith(f"{bridge.url}/callback/acme")) as info:
        op_login(page, bridge, "mallory")
    assert info.value.status == 403
    assert page.locator("#error-code").inner_text() == "access_denied"
    assert "mallory" not in page.content()
    page.screenshot(path=artifacts / "error-access-denied.png", full_page=True)

    page.click("a[href='/']")
    page.wait_for_url(f"{bridge.url}/")
    assert page.locator('a.signin[href="/login/acme"]').is_visible()
    answer = context.request.post(f"{bridge.url}/auth", headers={"Origin": bridge.url})
    assert answer.status == 401


def test_the_dev_idp_demo_signs_in_from_its_form(
    bridge: Bridge, new_context: Callable[..., Any], artifacts: Path
) -> None:
    page = new_context(viewport={"width": 1280, "height": 800}).new_page()
    page.goto(f"{bridge.url}/")
    page.click('a.signin[href="/login/dev"]')
    page.wait_for_url(f"{bridge.url}/dev-idp/**")
    page.get_by_label("Name").fill("Grace Hopper")
    page.get_by_label("Email").fill("grace@example.test")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{bridge.url}/")
    page.wait_for_function(
        "s => document.getElementById('chat-status').textContent === s", arg=SIGNED_IN_STATUS
    )
    assert page.locator("#user-name").inner_text() == "Grace Hopper"
    claims = verify(bridge, the_token(page))
    assert claims["_id"].startswith(f"{bridge.project_id}_dev_")
    assert claims["email"] == "grace@example.test"
    assert "role" not in claims
    page.locator("#token-details summary").click()
    assert claims["_id"] in page.locator("#token-payload").inner_text()
    page.screenshot(path=artifacts / "dev-idp-signed-in.png", full_page=True)


def test_sign_in_and_sign_out_work_without_javascript(
    bridge: Bridge, new_context: Callable[..., Any]
) -> None:
    context = new_context(java_script_enabled=False)
    page = context.new_page()
    sign_in(page, bridge, "bob", javascript=False)
    assert page.locator("#user-name").inner_text() == "Bob Builder"

    page.click("form#signout button[type=submit]")
    finish_op_logout(page, bridge)
    assert page.locator('a.signin[href="/login/acme"]').is_visible()
    answer = context.request.post(f"{bridge.url}/auth", headers={"Origin": bridge.url})
    assert answer.status == 401

    page.click('a.signin[href="/login/acme"]')
    page.wait_for_url(f"{bridge.op.issuer}/interaction/**")
    assert page.locator("input[name=login]").is_visible(), "the OP session should have ended"


# Holds the answer of POST /auth back until the widget stand-in has started, so the page hands
# the token to a running widget (the dispatcher, which returns the widget's Promise).
WIDGET_FIRST = """
(() => {
  const fetch = window.fetch;
  window.fetch = function () {
    return fetch.apply(this, arguments).then(response => new Promise(resolve => {
      (function wait() {
        if (window.__widgetState && window.__widgetState.started) resolve(response);
        else setTimeout(wait, 20);
      })();
    }));
  };
})();
"""


@pytest.mark.parametrize(
    "widget_first", [False, True], ids=["token-queued-before-widget-starts", "widget-running"]
)
def test_a_token_the_widget_refuses_is_fetched_again_once(
    bridge: Bridge, new_context: Callable[..., Any], widget_first: bool
) -> None:
    """The real widget starts late (first interaction or 5 s): the queued case is the usual one."""
    context = new_context()
    context.add_init_script("window.__widgetRejectTokens = 1;")
    if widget_first:
        context.add_init_script(WIDGET_FIRST)
    page = context.new_page()
    watch = Watch(page, bridge)
    sign_in(page, bridge, "alice")

    assert len(watch.requests("POST", "/auth")) == 2
    tokens = [call[1] for call in widget_calls(page, "signInWithCustomToken")]
    assert len(tokens) == 2
    assert tokens[0] != tokens[1], "the retry must use a freshly minted token"
    assert verify(bridge, tokens[1])["_id"] == verify(bridge, tokens[0])["_id"]
    assert page.evaluate("window.__widgetState.isLogged") is True
    assert page.evaluate("window.__widgetRejectTokens") == 0
    assert watch.page_errors == []


def test_a_widget_that_starts_late_still_gets_the_queued_token(
    bridge: Bridge, new_context: Callable[..., Any]
) -> None:
    """The real loader starts on the first interaction or after 5 s: the call waits in the queue."""
    context = new_context()
    context.add_init_script("window.__widgetStartDelayMs = 400;")
    page = context.new_page()
    sign_in(page, bridge, "bob")
    claims = verify(bridge, the_token(page))
    assert page.evaluate("window.__widgetState.user_id") == claims["_id"]


PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}


def test_the_pages_fit_phone_and_desktop_screens(
    bridge: Bridge, new_context: Callable[..., Any], artifacts: Path
) -> None:
    page = new_context(viewport=PHONE).new_page()
    page.goto(f"{bridge.url}/")
    for name, size in (("phone", PHONE), ("desktop", DESKTOP)):
        page.set_viewport_size(size)
        assert no_horizontal_scroll(page), name
        page.screenshot(path=artifacts / f"{name}-signed-out.png", full_page=True)

    sign_in(page, bridge, "alice")
    for name, size in (("phone", PHONE), ("desktop", DESKTOP)):
        page.set_viewport_size(size)
        assert no_horizontal_scroll(page), name
        box = page.locator("form#signout button[type=submit]").bounding_box()
        assert box is not None
        assert box["x"] >= 0
        assert box["x"] + box["width"] <= size["width"], name
        page.screenshot(path=artifacts / f"{name}-signed-in.png", full_page=True)
