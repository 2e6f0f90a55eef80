"""Issue 9: the chat on the company's own website, in Chromium, with two sites.

The customer site (tests/e2e/site/, strict CSP) runs on http://localhost:<port> while the bridge
runs on http://127.0.0.1:<port>: two different sites to Chromium, so the bridge's SameSite=Lax
cookie never comes along with the site's calls, as on a real cross-site deployment.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.tokens import carries_a_token

from .conftest import Bridge, Site
from .test_browser import PASSWORD, verify, widget_calls

pytestmark = pytest.mark.e2e

DESKTOP = {"width": 1280, "height": 800}


def op_login_in(page: Any, bridge: Bridge, username: str, *, until: str) -> None:
    """The OP's login (and consent) pages, until the browser is on a URL starting with ``until``."""
    page.wait_for_url(f"{bridge.op.issuer}/interaction/**")
    page.fill("input[name=login]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: url.startswith(until) or "/interaction/" in url)
    if page.url.startswith(bridge.op.issuer):
        page.wait_for_selector("input[name=prompt][value=consent]", state="attached")
        page.click("button[type=submit]")


def wait_until(page: Any, predicate: str, timeout: float = 30.0) -> None:
    """Poll a predicate with page.evaluate (over CDP, which no page CSP governs).

    Not wait_for_function: Playwright before 1.5x runs its predicate through eval in the
    page, which the site's strict CSP refuses (make test-lowest found it).
    """
    deadline = time.monotonic() + timeout
    while not page.evaluate(predicate):
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout} s: {predicate}")
        page.wait_for_timeout(100)


def chat_state(page: Any, expected: str) -> None:
    # A locator assertion, not wait_for_function: Playwright before 1.5x evaluates a string
    # predicate with eval, which the site's strict CSP refuses (make test-lowest found it).
    from playwright.sync_api import expect

    expect(page.locator("#bridge-state")).to_have_text(expected, timeout=30_000)


def popup_sign_in(page: Any, bridge: Bridge, site: Site, username: str) -> Any:
    with page.expect_popup() as info:
        page.click("#tiledesk-bridge-signin")
    popup = info.value
    with popup.expect_event("close"):
        op_login_in(popup, bridge, username, until=site.url)
    return popup


def test_popup_sign_in_on_another_site_signs_the_widget_in(
    bridge: Bridge, site: Site, new_context: Callable[..., Any], artifacts: Path
) -> None:
    page = new_context(viewport=DESKTOP).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{site.url}/index.html")
    chat_state(page, "signed-out")
    page.screenshot(path=artifacts / "site-signed-out.png")
    popup_sign_in(page, bridge, site, "alice")
    chat_state(page, "signed-in: Alice")
    page.screenshot(path=artifacts / "site-signed-in.png")

    (call,) = widget_calls(page, "signInWithCustomToken")
    claims = verify(bridge, call[1])
    assert claims["email"] == "alice@acme.test"
    assert page.evaluate("window.__widgetState.user_id") == claims["_id"]
    seen = page.evaluate("window.__tiledeskSettingsSeen")
    assert seen == {
        "lang": "en",  # the page's <html lang>, offered by the bridge
        "persistence": "local",
        "align": "left",
        "marginX": "24px",
        "projectid": bridge.project_id,
        "autoStart": False,
        "startHidden": True,  # sign-in required: no launcher (and no guest) until signed in
    }
    assert page.evaluate("window.__widgetErrors") == []
    assert errors == []


class Requests:
    """Every URL the browser asked for, in every page and popup of a context."""

    def __init__(self, context: Any) -> None:
        self.urls: list[str] = []
        context.on("request", lambda r: self.urls.append(r.url))

    def assert_no_token(self, *tokens: str) -> None:
        for url in self.urls:
            assert not carries_a_token(url), url
            for token in tokens:
                assert token[4:] not in url, url


def stored_item(page: Any, bridge: Bridge) -> Any:
    return page.evaluate(
        "k => JSON.parse(localStorage.getItem(k) || 'null')", f"tiledesk-bridge:{bridge.url}:token"
    )


def set_op_coop(bridge: Bridge, value: str) -> None:
    import httpx

    httpx.post(f"{bridge.op.origin}/__test/coop", content=value).raise_for_status()


def test_popup_sign_in_works_when_the_op_pages_send_coop_same_origin(
    bridge: Bridge, site: Site, new_context: Callable[..., Any]
) -> None:
    """COOP cuts window.opener and makes popup.closed read true: the channel still delivers."""
    set_op_coop(bridge, "same-origin")
    try:
        context = new_context(viewport=DESKTOP)
        page = context.new_page()
        page.goto(f"{site.url}/index.html")
        chat_state(page, "signed-out")
        with page.expect_popup() as info:
            page.click("#tiledesk-bridge-signin")
        popup = info.value
        popup.wait_for_url(f"{bridge.op.issuer}/interaction/**")
        assert popup.evaluate("window.opener") is None, "COOP should have cut the opener"
        # popup.closed now reads true for the opener: after the grace, "maybe closed" is shown...
        chat_state(page, "signed-out (popup_closed)")
        op_login_in(popup, bridge, "bob", until=site.url)
        # ...and the late result is still taken.
        chat_state(page, "signed-in: Bob")
        (call,) = widget_calls(page, "signInWithCustomToken")
        assert verify(bridge, call[1])["email"] == "bob@acme.test"
        popup.wait_for_event("close") if not popup.is_closed() else None
        assert popup.is_closed()
    finally:
        set_op_coop(bridge, "")


def test_the_next_page_of_the_site_is_signed_in_on_load_from_the_sites_storage(
    bridge: Bridge, site: Site, new_context: Callable[..., Any]
) -> None:
    context = new_context(viewport=DESKTOP)
    requests = Requests(context)
    page = context.new_page()
    page.goto(f"{site.url}/index.html")
    chat_state(page, "signed-out")
    popup_sign_in(page, bridge, site, "alice")
    chat_state(page, "signed-in: Alice")
    (first,) = widget_calls(page, "signInWithCustomToken")

    # Cross-site, the bridge's cookie never comes along: the token is kept on the site, alone.
    item = stored_item(page, bridge)
    assert set(item) == {"token", "expiresAt", "user"}
    assert item["token"] == first[1]
    assert item["expiresAt"] == verify(bridge, first[1])["exp"]
    assert page.evaluate("document.cookie") == ""

    page.click("#next-page")
    page.wait_for_url(f"{site.url}/page2.html?from=home")
    chat_state(page, "signed-in: Alice")
    (again,) = widget_calls(page, "signInWithCustomToken")
    assert again[1] == first[1]
    assert page.locator("#tiledesk-bridge-signin").is_hidden()
    requests.assert_no_token(first[1])


def test_a_same_site_page_is_signed_in_through_the_bridge_cookie(
    bridge: Bridge, same_site: Site, new_context: Callable[..., Any]
) -> None:
    """127.0.0.1:<other port> is the bridge's own site: SameSite=Lax cookies come along."""
    context = new_context(viewport=DESKTOP)
    page = context.new_page()
    page.goto(f"{same_site.url}/index.html")
    chat_state(page, "signed-out")
    # "offered" on this site: the widget's own launcher stays (it makes a guest when opened),
    # and nothing of the widget is touched before the visitor signs in.
    wait_until(page, "() => Boolean(window.__tiledeskSettingsSeen)")
    assert "startHidden" not in page.evaluate("window.__tiledeskSettingsSeen")
    assert widget_calls(page, "logout") == []

    popup_sign_in(page, bridge, same_site, "alice")
    chat_state(page, "signed-in: Alice")
    assert stored_item(page, bridge) is None, "the cookie works: nothing is kept on the site"

    page.click("#next-page")
    chat_state(page, "signed-in: Alice")
    (call,) = widget_calls(page, "signInWithCustomToken")
    assert verify(bridge, call[1])["email"] == "alice@acme.test"
    assert widget_calls(page, "signInAnonymous") == []
    assert page.evaluate("window.__widgetErrors") == []


def test_redirect_mode_signs_in_in_the_tab_and_lands_on_the_same_page(
    bridge: Bridge, site: Site, new_context: Callable[..., Any]
) -> None:
    context = new_context(viewport=DESKTOP)
    requests = Requests(context)
    page = context.new_page()
    page.goto(f"{site.url}/redirect.html?order=42")
    chat_state(page, "signed-out")
    page.click("#tiledesk-bridge-signin")
    op_login_in(page, bridge, "alice", until=site.url)
    chat_state(page, "signed-in: Alice")
    assert page.url == f"{site.url}/redirect.html?order=42", "back on that page, fragment gone"
    (call,) = widget_calls(page, "signInWithCustomToken")
    assert verify(bridge, call[1])["email"] == "alice@acme.test"
    landings = [u for u in requests.urls if u.startswith(f"{site.url}/redirect.html")]
    assert landings == [f"{site.url}/redirect.html?order=42"] * 2, "no handle sent to the site"
    requests.assert_no_token(call[1])


def test_a_popup_closed_by_the_visitor_is_reported_on_the_site(
    bridge: Bridge, site: Site, new_context: Callable[..., Any], artifacts: Path
) -> None:
    page = new_context(viewport=DESKTOP).new_page()
    page.goto(f"{site.url}/index.html")
    chat_state(page, "signed-out")
    with page.expect_popup() as info:
        page.click("#tiledesk-bridge-signin")
    popup = info.value
    popup.wait_for_url(f"{bridge.op.issuer}/interaction/**")
    popup.close()
    chat_state(page, "signed-out (popup_closed)")
    assert page.locator("#tiledesk-bridge-status").inner_text() == (
        "The sign-in window was closed before the sign-in finished."
    )
    assert page.locator("#tiledesk-bridge-signin").is_visible()
    page.screenshot(path=artifacts / "site-popup-closed.png")
    assert widget_calls(page, "signInWithCustomToken") == []


def test_access_denied_is_shown_on_the_site(
    bridge: Bridge, site: Site, new_context: Callable[..., Any], artifacts: Path
) -> None:
    page = new_context(viewport=DESKTOP).new_page()
    page.goto(f"{site.url}/index.html")
    chat_state(page, "signed-out")
    popup_sign_in(page, bridge, site, "mallory")
    chat_state(page, "signed-out (access_denied)")
    status = page.locator("#tiledesk-bridge-status")
    assert status.inner_text() == "Your account may not use this chat."
    page.screenshot(path=artifacts / "site-access-denied.png")
    assert widget_calls(page, "signInWithCustomToken") == []
    assert stored_item(page, bridge) is None


def test_an_origin_not_in_sites_gets_nothing(
    bridge: Bridge, site: Site, foreign_site: Site, new_context: Callable[..., Any]
) -> None:
    context = new_context(viewport=DESKTOP)
    page = context.new_page()
    messages: list[str] = []
    page.on("console", lambda m: messages.append(m.text))
    page.goto(f"{foreign_site.url}/index.html")
    wait_until(
        page, "() => window.TiledeskBridge && window.TiledeskBridge.state.status === 'error'"
    )
    assert page.evaluate("window.TiledeskBridge.state.error") == "unavailable"
    assert page.evaluate("typeof window.Tiledesk") == "undefined", "no widget loaded"
    assert page.locator("#tiledesk-bridge").is_hidden(), "nothing shown to the visitor"
    assert f"is {foreign_site.url} in its [sites]?" in " ".join(messages)
    answer = page.evaluate(
        """url => fetch(url + '/auth', {method: 'POST', credentials: 'include'})
            .then(r => 'read ' + r.status, e => 'refused')""",
        bridge.url,
    )
    assert answer == "refused", "CORS must not let this origin read /auth"

    # A sign-in started for it is refused at the bridge, before any IdP.
    login = context.request.get(
        f"{bridge.url}/login/acme",
        params={
            "return_to": f"{foreign_site.url}/index.html",
            "mode": "popup",
            "challenge": "a" * 43,
        },
        max_redirects=0,
    )
    assert login.status == 400
    assert "location" not in login.headers


def op_session_ended(page: Any, bridge: Bridge, site: Site) -> None:
    """Signing in again shows the OP's login page: no silent sign-in on a shared computer."""
    with page.expect_popup() as info:
        page.click("[data-tiledesk-signin], #tiledesk-bridge-signin")
    popup = info.value
    popup.wait_for_url(f"{bridge.op.issuer}/interaction/**")
    assert popup.locator("input[name=login]").is_visible()
    popup.close()


def bridge_session(context: Any, bridge: Bridge) -> int:
    answer = context.request.post(f"{bridge.url}/auth", headers={"Origin": bridge.url})
    return int(answer.status)


def test_sign_out_from_another_site_ends_widget_bridge_and_op_sessions(
    bridge: Bridge, site: Site, new_context: Callable[..., Any], artifacts: Path
) -> None:
    """Cross-site the cookie cannot come along: one click on the bridge's page ends it all."""
    context = new_context(viewport=DESKTOP)
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda m: console.append(m.text))
    page.goto(f"{site.url}/custom.html")
    chat_state(page, "signed-out")
    with page.expect_popup() as info:
        page.click("#site-signin")
    with info.value.expect_event("close"):
        op_login_in(info.value, bridge, "alice", until=site.url)
    chat_state(page, "signed-in: Alice")
    assert bridge_session(context, bridge) == 200

    page.click("#site-signout")
    page.wait_for_url(f"{bridge.url}/logout/site?**")
    assert "[tiledesk] logout" in console, "the widget is signed out before the page leaves"
    assert stored_item(page, bridge) is None
    page.screenshot(path=artifacts / "site-sign-out-confirm.png")
    page.click("#site-signout button[type=submit]")
    try:
        page.wait_for_url(f"{site.url}/custom.html")
    except Exception as exc:
        raise AssertionError(f"sign-out ended at {page.url}: {page.content()[:2000]}") from exc
    chat_state(page, "signed-out")

    assert bridge_session(context, bridge) == 401
    assert page.evaluate("window.__widgetState.isLogged") is False
    op_session_ended(page, bridge, site)


def test_sign_out_from_a_same_site_page_through_the_api_comes_back_to_it(
    bridge: Bridge, same_site: Site, new_context: Callable[..., Any]
) -> None:
    """The cookie comes along: a CORS POST /logout, then the IdP, then back to the page."""
    context = new_context(viewport=DESKTOP)
    page = context.new_page()
    page.goto(f"{same_site.url}/custom.html")
    chat_state(page, "signed-out")
    page.evaluate(
        """() => { window.__seen = [];
                   window.TiledeskBridge.onChange(s => window.__seen.push(s.status)); }"""
    )
    with page.expect_popup() as info:
        page.evaluate("window.TiledeskBridge.signIn('acme')")
    with info.value.expect_event("close"):
        op_login_in(info.value, bridge, "bob", until=same_site.url)
    chat_state(page, "signed-in: Bob")
    assert page.evaluate("window.__seen") == ["signed-out", "signing-in", "signed-in"]

    with page.expect_request(lambda r: r.url.startswith(f"{bridge.op.issuer}/session/end")):
        page.evaluate("window.TiledeskBridge.signOut()")
    page.wait_for_url(f"{same_site.url}/custom.html")
    chat_state(page, "signed-out")
    assert bridge_session(context, bridge) == 401
    op_session_ended(page, bridge, same_site)


@pytest.fixture
def third_party_cookies_blocked(browser: Any, tmp_path: Path) -> Any:
    """A Chromium profile with "Block third-party cookies" on, as a privacy-minded visitor has."""
    from .conftest import CHROMIUM, CHROMIUM_ARGS

    profile = tmp_path / "profile"
    (profile / "Default").mkdir(parents=True)
    prefs = {"profile": {"cookie_controls_mode": 1, "block_third_party_cookies": True}}
    (profile / "Default" / "Preferences").write_text(json.dumps(prefs))
    context = browser.browser_type.launch_persistent_context(
        str(profile), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS, viewport=DESKTOP
    )
    context.set_default_timeout(10_000)
    yield context
    context.close()


def test_third_party_cookies_blocked_still_signs_in_through_the_popup(
    bridge: Bridge, site: Site, third_party_cookies_blocked: Any
) -> None:
    context = third_party_cookies_blocked
    page = context.pages[0] if context.pages else context.new_page()
    # First, that the profile does block them: a SameSite=None cookie of the bridge's origin
    # goes along first-party, and stays home from the site.
    page.goto(f"{bridge.url}/healthz")
    page.evaluate("document.cookie = 'probe=1; SameSite=None; Secure; Path=/'")
    with page.expect_request(f"{bridge.url}/healthz") as home:
        page.reload()
    assert "probe=1" in home.value.all_headers().get("cookie", ""), "first-party, it is sent"
    page.goto(f"{site.url}/index.html")
    chat_state(page, "signed-out")
    with page.expect_request(f"{bridge.url}/healthz") as probe:
        page.evaluate(
            "u => fetch(u + '/healthz', {credentials: 'include', mode: 'no-cors'}).then(() => 1)",
            bridge.url,
        )
    assert "cookie" not in probe.value.all_headers()

    popup_sign_in(page, bridge, site, "alice")
    chat_state(page, "signed-in: Alice")
    (call,) = widget_calls(page, "signInWithCustomToken")
    assert verify(bridge, call[1])["email"] == "alice@acme.test"
    page.reload()
    chat_state(page, "signed-in: Alice")


def test_a_blocked_popup_falls_back_to_signing_in_in_the_tab(
    bridge: Bridge, site: Site, new_context: Callable[..., Any]
) -> None:
    context = new_context(viewport=DESKTOP)
    context.add_init_script("window.open = function () { return null; };")  # a popup blocker
    page = context.new_page()
    page.goto(f"{site.url}/page2.html?from=ad")
    chat_state(page, "signed-out")
    page.click("#tiledesk-bridge-signin")
    op_login_in(page, bridge, "bob", until=site.url)
    chat_state(page, "signed-in: Bob")
    assert page.url == f"{site.url}/page2.html?from=ad"


def test_the_script_ignores_results_from_anything_but_its_own_popup(
    bridge: Bridge, site: Site, new_context: Callable[..., Any]
) -> None:
    page = new_context(viewport=DESKTOP).new_page()
    redemptions: list[str] = []
    page.on(
        "request",
        lambda r: redemptions.append(r.url) if r.method == "POST" and r.post_data else None,
    )
    page.goto(f"{site.url}/index.html")
    chat_state(page, "signed-out")
    with page.expect_popup() as info:
        page.click("#tiledesk-bridge-signin")
    popup = info.value
    popup.wait_for_url(f"{bridge.op.issuer}/interaction/**")
    forged = {"type": "tiledesk-bridge:result", "handle": "A" * 43}
    # From the page itself (not its popup), and from the OP's page in the popup (another origin).
    page.evaluate("m => window.postMessage(m, '*')", forged)
    popup.evaluate("m => window.opener && window.opener.postMessage(m, '*')", forged)
    page.wait_for_timeout(500)
    assert redemptions == []
    assert page.evaluate("window.TiledeskBridge.state.status") == "signing-in"
    popup.close()


TOKEN_TTL_MS = 28800 * 1000  # [tiledesk] token_ttl's default


def test_the_token_is_renewed_before_exp_and_the_widget_signed_out_when_the_session_ends(
    bridge: Bridge, same_site: Site, new_context: Callable[..., Any]
) -> None:
    context = new_context(viewport=DESKTOP)
    context.clock.install()
    page = context.new_page()
    page.goto(f"{same_site.url}/index.html")
    chat_state(page, "signed-out")
    popup_sign_in(page, bridge, same_site, "alice")
    chat_state(page, "signed-in: Alice")
    assert len(widget_calls(page, "signInWithCustomToken")) == 1

    page.clock.fast_forward(TOKEN_TTL_MS - 100_000)  # past exp - 2 min: time to renew
    wait_until(
        page,
        "() => window.__tiledeskCalls.filter(c => c[0] === 'signInWithCustomToken').length === 2",
    )
    first, second = widget_calls(page, "signInWithCustomToken")
    assert first[1] != second[1]
    assert verify(bridge, second[1])["_id"] == verify(bridge, first[1])["_id"]
    assert widget_calls(page, "logout") == [], "renewed in place, never signed out"

    # The bridge session ends elsewhere: the next renewal signs the widget out instead.
    assert (
        context.request.post(
            f"{bridge.url}/logout", headers={"Origin": bridge.url}, max_redirects=0
        ).status
        == 303
    )
    page.clock.fast_forward(60_000)
    chat_state(page, "signed-out")
    assert len(widget_calls(page, "logout")) == 1
    assert page.evaluate("window.__widgetState.isLogged") is False


def test_a_token_kept_on_another_site_is_dropped_at_its_exp(
    bridge: Bridge, site: Site, new_context: Callable[..., Any]
) -> None:
    context = new_context(viewport=DESKTOP)
    context.clock.install()
    page = context.new_page()
    page.goto(f"{site.url}/index.html")
    chat_state(page, "signed-out")
    popup_sign_in(page, bridge, site, "bob")
    chat_state(page, "signed-in: Bob")
    assert stored_item(page, bridge) is not None

    page.clock.fast_forward(TOKEN_TTL_MS - 100_000)
    chat_state(page, "signed-out")
    assert stored_item(page, bridge) is None
    assert page.evaluate("window.__widgetState.isLogged") is False
    page.reload()
    chat_state(page, "signed-out")


def test_a_token_the_widget_refuses_is_fetched_again_once_on_the_site(
    bridge: Bridge, same_site: Site, new_context: Callable[..., Any]
) -> None:
    context = new_context(viewport=DESKTOP)
    context.add_init_script("window.__widgetRejectTokens = 1;")
    page = context.new_page()
    page.goto(f"{same_site.url}/index.html")
    chat_state(page, "signed-out")
    popup_sign_in(page, bridge, same_site, "bob")
    chat_state(page, "signed-in: Bob")
    first, second = widget_calls(page, "signInWithCustomToken")
    assert first[1] != second[1]
    assert page.evaluate("window.__widgetState.user_id") == verify(bridge, second[1])["_id"]


PHONE = {"width": 390, "height": 844}


def test_the_sign_in_control_fits_a_phone(
    bridge: Bridge, site: Site, new_context: Callable[..., Any], artifacts: Path
) -> None:
    page = new_context(viewport=PHONE).new_page()
    page.goto(f"{site.url}/index.html")
    chat_state(page, "signed-out")
    box = page.locator("#tiledesk-bridge").bounding_box()
    assert box is not None
    assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.screenshot(path=artifacts / "site-phone-signed-out.png")


def test_signing_in_or_out_in_one_tab_of_another_site_reaches_its_other_tabs(
    bridge: Bridge, site: Site, new_context: Callable[..., Any]
) -> None:
    context = new_context(viewport=DESKTOP)
    first = context.new_page()
    first.goto(f"{site.url}/custom.html")
    other = context.new_page()
    other.goto(f"{site.url}/page2.html")
    chat_state(first, "signed-out")
    chat_state(other, "signed-out")
    with first.expect_popup() as info:
        first.click("#site-signin")
    with info.value.expect_event("close"):
        op_login_in(info.value, bridge, "alice", until=site.url)
    chat_state(first, "signed-in: Alice")
    chat_state(other, "signed-in: Alice")

    with first.expect_navigation(url=f"{bridge.url}/logout/site?**"):
        first.click("#site-signout")
    chat_state(other, "signed-out")
    assert other.evaluate("window.__widgetState.isLogged") is False


def test_a_landing_in_a_tab_that_cannot_close_says_so_and_clears_the_address_bar(
    bridge: Bridge, site: Site, new_context: Callable[..., Any], artifacts: Path
) -> None:
    """The page was opened by hand (or the browser kept the popup): it tells the visitor."""
    page = new_context(viewport=DESKTOP).new_page()
    page.goto(f"{site.url}/index.html?x=1#tdb_mode=popup&tdb_handle={'A' * 43}")
    note = page.locator("#tiledesk-bridge-popup-done")
    note.wait_for()
    assert note.inner_text() == "Sign-in finished. You can close this window."
    assert page.url == f"{site.url}/index.html?x=1"
    assert page.evaluate("typeof window.Tiledesk") == "undefined", "no widget in the popup"
    page.screenshot(path=artifacts / "site-popup-landing.png")
