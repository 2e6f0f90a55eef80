"""Issue 9: the chat on the company's own website, in Chromium, with two sites.

The customer site (tests/e2e/site/, strict CSP) runs on http://localhost:<port> while the bridge
runs on http://127.0.0.1:<port>: two different sites to Chromium, so the bridge's SameSite=Lax
cookie never comes along with the site's calls, as on a real cross-site deployment.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

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


def chat_state(page: Any, expected: str) -> None:
    page.wait_for_function(
        "s => document.getElementById('bridge-state').textContent === s", arg=expected
    )


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
        "persistence": "local",
        "align": "left",
        "marginX": "24px",
        "projectid": bridge.project_id,
        "autoStart": False,
    }
    assert page.evaluate("window.__widgetErrors") == []
    assert errors == []
