"""Issue 11 on a customer site, in Chromium: the embed script's words and the widget in the
visitor's language, the site's sign-in states and the bridge's site sign-out page at phone and
desktop width, accessible (axe-core) and usable with the keyboard; screenshots in artifacts/."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from .conftest import Bridge, Site
from .test_browser import widget_calls
from .test_embed import chat_state, op_login_in, popup_sign_in
from .test_pages_browser import SIZES, look, serious_violations, tab_to

pytestmark = pytest.mark.e2e

WORDS = {
    "en": {
        "sign_in": "Sign in to chat",
        "denied": "Your account may not use this chat.",
        "closed": "The sign-in window was closed before the sign-in finished.",
        "sign_out_title": "Sign out of the chat?",
    },
    "it": {
        "sign_in": "Accedi per chattare",
        "denied": "Il tuo account non è autorizzato a usare questa chat.",
        "closed": "La finestra di accesso è stata chiusa prima che l'accesso fosse completato.",
        "sign_out_title": "Vuoi uscire dalla chat?",
    },
}
PAGES = {"en": "index.html", "it": "it.html"}
LOCALES = {"en": "en-GB", "it": "it-IT"}


def site_look(page: Any, axe: Path, artifacts: Path, name: str) -> None:
    """The customer page with the script's own control: accessible, and a screenshot each."""
    for size_name, size in SIZES.items():
        page.set_viewport_size(size)
        assert serious_violations(page, axe) == [], f"{name} at {size_name}"
        page.screenshot(path=artifacts / f"site-{name}-{size_name}.png")


@pytest.mark.parametrize("lang", ["en", "it"])
def test_the_sites_sign_in_speaks_the_visitors_language_and_so_does_the_widget(
    bridge: Bridge,
    site: Site,
    new_context: Callable[..., Any],
    artifacts: Path,
    axe: Path,
    lang: str,
) -> None:
    words = WORDS[lang]
    # bypass_csp only so that axe-core can be injected; the CSP itself is the embed suite's.
    context = new_context(locale=LOCALES[lang], bypass_csp=True)
    page = context.new_page()
    page.goto(f"{site.url}/{PAGES[lang]}")
    chat_state(page, "signed-out")
    assert page.locator("#tiledesk-bridge-signin").inner_text() == words["sign_in"]
    site_look(page, axe, artifacts, f"{lang}-signed-out")

    with page.expect_popup() as info:
        page.click("#tiledesk-bridge-signin")
    info.value.wait_for_url(f"{bridge.op.issuer}/interaction/**")
    info.value.close()
    chat_state(page, "signed-out (popup_closed)")
    assert page.locator("#tiledesk-bridge-status").inner_text() == words["closed"]
    assert page.evaluate("window.TiledeskBridge.state.message") == words["closed"]
    site_look(page, axe, artifacts, f"{lang}-popup-closed")

    popup_sign_in(page, bridge, site, "alice")
    chat_state(page, "signed-in: Alice")
    assert page.evaluate("window.__tiledeskSettingsSeen.lang") == lang
    assert len(widget_calls(page, "signInWithCustomToken")) == 1

    # The bridge's own page for signing out from a site, in the same language.
    signed_out_page = f"{site.url}/{PAGES[lang]}"
    page.goto(f"{bridge.url}/logout/site?return_to={quote(signed_out_page)}")
    assert page.locator("html").get_attribute("lang") == lang
    assert page.locator("h1").inner_text() == words["sign_out_title"]
    look(page, axe, artifacts, f"{lang}-site-sign-out")
    tab_to(page, "#site-signout button[type=submit]")
    page.keyboard.press("Enter")
    page.wait_for_url(lambda url: not url.startswith(f"{bridge.url}/logout/site"))

    # Another visitor, whom the access rules refuse (the OP remembers who signed in last).
    denied = new_context(locale=LOCALES[lang], bypass_csp=True).new_page()
    denied.goto(f"{site.url}/{PAGES[lang]}")
    chat_state(denied, "signed-out")
    popup_sign_in(denied, bridge, site, "mallory")
    chat_state(denied, "signed-out (access_denied)")
    assert denied.locator("#tiledesk-bridge-status").inner_text() == words["denied"]
    site_look(denied, axe, artifacts, f"{lang}-access-denied")


def test_an_english_page_keeps_english_words_for_an_italian_browser(
    bridge: Bridge, site: Site, new_context: Callable[..., Any]
) -> None:
    """The words match the page the visitor reads: its <html lang> comes before the browser's."""
    page = new_context(locale="it-IT").new_page()
    page.goto(f"{site.url}/index.html")
    chat_state(page, "signed-out")
    assert page.locator("#tiledesk-bridge-signin").inner_text() == WORDS["en"]["sign_in"]


def test_the_popup_tells_the_visitor_in_their_language_when_it_stays_open(
    bridge: Bridge, site: Site, new_context: Callable[..., Any], artifacts: Path
) -> None:
    """A browser may refuse to let the popup close itself: its note then says it may be closed."""
    context = new_context(locale="it-IT")
    page = context.new_page()
    page.goto(f"{site.url}/it.html")
    chat_state(page, "signed-out")
    with page.expect_popup() as info:
        page.click("#tiledesk-bridge-signin")
    popup = info.value
    popup.add_init_script("window.close = function () {};")  # as a browser that refuses it
    op_login_in(popup, bridge, "alice", until=site.url)
    chat_state(page, "signed-in: Alice")
    note = popup.locator("#tiledesk-bridge-popup-done")
    note.wait_for()
    assert note.inner_text() == "Accesso completato. Puoi chiudere questa finestra."
    popup.screenshot(path=artifacts / "site-it-popup-done.png")
