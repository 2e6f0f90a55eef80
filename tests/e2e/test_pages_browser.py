"""Issue 11 in Chromium: every page in English and Italian, accessible (axe-core), usable with
the keyboard alone, and honest when the chat cannot load. Screenshots of each page, at phone and
desktop widths, go to tests/e2e/artifacts/."""

from __future__ import annotations

import re
import secrets
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.servers import free_port, stop_process

from .conftest import (
    PROJECT_ID,
    REPO_ROOT,
    Bridge,
    _wait_ready,
)
from .test_browser import DESKTOP, PHONE, finish_op_logout, op_login

pytestmark = pytest.mark.e2e

SIZES = {"phone": PHONE, "desktop": DESKTOP}
LOCALES = {"en": "en-GB", "it": "it-IT"}
TEXT = {
    "en": {
        "connected": "Chat connected.",
        "signed_out": "You are signed out",
        "not_loaded": "The chat could not load.",
        "first_visit": "Sign in to chat",
        "not_found": "Page not found",
        "sign_in_failed": "We could not sign you in",
        "try_again": "Try again",
    },
    "it": {
        "connected": "Chat collegata.",
        "signed_out": "Disconnessione effettuata",
        "not_loaded": "Non è stato possibile caricare la chat.",
        "first_visit": "Accedi per chattare",
        "not_found": "Pagina non trovata",
        "sign_in_failed": "Non siamo riusciti a farti accedere",
        "try_again": "Riprova",
    },
}


def serious_violations(page: Any, axe: Path) -> list[str]:
    """axe-core's serious and critical findings on the page as it is now."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(axe))
    found = page.evaluate(
        """async () => {
          const result = await axe.run(document, {resultTypes: ["violations"]});
          return result.violations
            .filter(v => v.impact === "serious" || v.impact === "critical")
            .map(v => v.id + ": " + v.nodes.map(n => n.target.join(" ")).join(", "));
        }"""
    )
    return list(found)


def look(page: Any, axe: Path, artifacts: Path, name: str) -> None:
    """At phone and desktop width: no serious accessibility finding, no sideways scroll, and
    a screenshot for a person to look at."""
    for size_name, size in SIZES.items():
        page.set_viewport_size(size)
        assert serious_violations(page, axe) == [], f"{name} at {size_name}"
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), name
        page.screenshot(path=artifacts / f"page-{name}-{size_name}.png", full_page=True)


def dev_sign_in(page: Any, bridge: Bridge, wait_until: str = "load") -> None:
    page.click('a.signin[href="/login/dev"]')
    page.wait_for_url(f"{bridge.url}/dev-idp/**")
    page.get_by_label("Name").fill("Grace Hopper")
    page.get_by_label("Email").fill("grace@example.test")
    page.locator("button[type=submit]").click()
    page.wait_for_url(f"{bridge.url}/", wait_until=wait_until)


def status_is(page: Any, text: str) -> None:
    page.wait_for_function(
        "s => document.getElementById('chat-status').textContent.startsWith(s)", arg=text
    )


@pytest.mark.parametrize("lang", ["en", "it"])
def test_every_page_in_the_visitors_language_is_accessible_at_phone_and_desktop_width(
    bridge: Bridge,
    new_context: Callable[..., Any],
    artifacts: Path,
    axe: Path,
    widget_origin: str,
    lang: str,
) -> None:
    text = TEXT[lang]
    context = new_context(locale=LOCALES[lang], bypass_csp=True, viewport=DESKTOP)
    page = context.new_page()

    page.goto(f"{bridge.url}/")
    assert page.locator("html").get_attribute("lang") == lang
    assert page.locator("h1").inner_text() == text["first_visit"]
    look(page, axe, artifacts, f"{lang}-first-visit")

    page.goto(f"{bridge.url}/login")
    look(page, axe, artifacts, f"{lang}-chooser")

    page.goto(f"{bridge.url}/")
    dev_sign_in(page, bridge)
    status_is(page, text["connected"])
    assert page.evaluate("window.__tiledeskSettingsSeen.lang") == lang
    look(page, axe, artifacts, f"{lang}-signed-in")

    page.click("form#signout button[type=submit]")
    page.wait_for_url(f"{bridge.url}/")
    assert page.locator("#signed-out h1").inner_text() == text["signed_out"]
    look(page, axe, artifacts, f"{lang}-signed-out")

    page.goto(f"{bridge.url}/callback/acme?state=forged&code=x")
    assert page.locator("h1").inner_text() == text["sign_in_failed"]
    assert page.locator("#try-again").inner_text() == text["try_again"]
    look(page, axe, artifacts, f"{lang}-error-state-mismatch")

    page.goto(f"{bridge.url}/nope")
    assert page.locator("h1").inner_text() == text["not_found"]
    look(page, axe, artifacts, f"{lang}-not-found")

    blocked = new_context(locale=LOCALES[lang], bypass_csp=True, viewport=DESKTOP)
    blocked.route(f"{widget_origin}/launch.js", lambda route: route.abort("blockedbyclient"))
    page = blocked.new_page()
    page.goto(f"{bridge.url}/")
    dev_sign_in(page, bridge)
    status_is(page, text["not_loaded"])
    look(page, axe, artifacts, f"{lang}-chat-not-loaded")


def test_the_dev_idp_page_is_accessible_and_keeps_the_redirect_uri_on_one_line(
    bridge: Bridge, new_context: Callable[..., Any], artifacts: Path, axe: Path
) -> None:
    page = new_context(bypass_csp=True, viewport=DESKTOP).new_page()
    page.goto(f"{bridge.url}/login/dev")
    page.wait_for_url(f"{bridge.url}/dev-idp/**")
    uri = page.locator("code.uri")
    assert uri.inner_text() == f"{bridge.url}/callback/dev"
    assert page.evaluate("el => el.getClientRects().length", uri.element_handle()) == 1
    line = page.evaluate("el => parseFloat(getComputedStyle(el).lineHeight)", uri.element_handle())
    assert uri.bounding_box()["height"] < 1.5 * line, "the redirect URI wraps at desktop width"
    look(page, axe, artifacts, "dev-idp")


def test_the_chooser_buttons_are_all_the_same_width(
    bridge: Bridge, new_context: Callable[..., Any]
) -> None:
    page = new_context().new_page()
    for size in (PHONE, DESKTOP):
        page.set_viewport_size(size)
        page.goto(f"{bridge.url}/login")
        widths = [box["width"] for box in map(_box, page.locator("a.signin").all())]
        assert len(widths) == 2
        assert widths[0] == widths[1], widths


def _box(locator: Any) -> dict[str, float]:
    box: dict[str, float] = locator.bounding_box()
    return box


def test_a_blocked_chat_script_is_reported_not_left_connecting(
    bridge: Bridge, new_context: Callable[..., Any], widget_origin: str
) -> None:
    context = new_context()
    context.route(f"{widget_origin}/launch.js", lambda route: route.abort("blockedbyclient"))
    page = context.new_page()
    page.goto(f"{bridge.url}/")
    dev_sign_in(page, bridge)
    status_is(page, "The chat could not load.")
    assert page.locator("#chat-status").inner_text() == (
        "The chat could not load. An ad blocker, a browser extension or a company firewall may "
        "be blocking it: allow this site, or try another network, then reload the page."
    )


def test_a_chat_script_that_never_answers_is_reported_after_a_bounded_wait(
    bridge: Bridge, new_context: Callable[..., Any], widget_origin: str
) -> None:
    context = new_context()
    context.route(f"{widget_origin}/launch.js", lambda route: None)  # held forever
    page = context.new_page()
    page.clock.install()
    page.goto(f"{bridge.url}/", wait_until="domcontentloaded")
    dev_sign_in(page, bridge, wait_until="domcontentloaded")
    status_is(page, "Connecting the chat…")
    page.clock.run_for(19_000)
    assert page.locator("#chat-status").inner_text() == "Connecting the chat…"
    page.clock.run_for(2_000)
    status_is(page, "The chat could not load.")


def tab_to(page: Any, selector: str, limit: int = 20) -> None:
    """Press Tab until the element is focused, as a keyboard user would."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("s => document.activeElement.matches(s)", selector):
            outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
            assert outline != "none", f"{selector} shows no focus"
            return
    raise AssertionError(f"{selector} cannot be reached with Tab")


def test_sign_in_and_sign_out_with_the_keyboard_alone(
    bridge: Bridge, new_context: Callable[..., Any]
) -> None:
    page = new_context().new_page()
    page.goto(f"{bridge.url}/")
    tab_to(page, 'a.signin[href="/login/acme"]')
    page.keyboard.press("Enter")
    page.wait_for_url(f"{bridge.op.issuer}/interaction/**")
    op_login(page, bridge, "alice")  # the OP's own pages are not the bridge's to test
    page.wait_for_url(f"{bridge.url}/")
    status_is(page, "Chat connected.")

    tab_to(page, "form#signout button")
    page.keyboard.press("Enter")
    finish_op_logout(page, bridge)
    assert page.locator("#signed-out h1").inner_text() == "You are signed out"
    assert page.locator("#signed-out p").inner_text() == ("You were also signed out of Acme SSO.")
    tab_to(page, 'a.signin[href="/login/acme"]')


# --- a branded bridge ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def branded(tmp_path_factory: pytest.TempPathFactory, widget_origin: str) -> Iterator[str]:
    """A second bridge, made the operator's own with [pages] and one overridden block."""
    home = tmp_path_factory.mktemp("branded")
    (home / "templates").mkdir()
    (home / "templates" / "base.html").write_text(
        '{% extends "bridge/base.html" %}\n'
        "{% block footer %}{{ super() }}"
        '<p class="foot">Acme S.p.A. · P.IVA 01234567890</p>{% endblock %}\n'
    )
    (home / "logo.svg").write_text(
        '<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64" viewBox="0 0 64 64">'
        '<circle cx="32" cy="32" r="30" fill="#0a7d4f"/>'
        '<path d="M20 44 32 18l12 26" stroke="#fff" stroke-width="6" fill="none"/></svg>'
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    (home / "settings.toml").write_text(
        f"""\
[server]
public_url = "{url}"

[session]
secret = "{secrets.token_urlsafe(48)}"

[tiledesk]
project_id = "{PROJECT_ID}"
secret = "{uuid.uuid4()}"
widget_url = "{widget_origin}/launch.js"

[pages]
templates_dir = "templates"
languages = ["it", "en"]
default_language = "it"
title = "Acme Assistenza"
logo = "logo.svg"
accent = "#0a7d4f"
footer = "Assistenza clienti dal lunedì al venerdì, dalle 9 alle 18."
support_url = "mailto:assistenza@acme.test"

[providers.dev]
preset = "dev"
display_name = "Acme Login"
"""
    )
    log = home / "bridge.log"
    with log.open("wb") as out:
        serve = [sys.executable, "-m", "bridge", "serve", "--settings", str(home / "settings.toml")]
        proc = subprocess.Popen(
            [*serve, "--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_ready(proc, url, log)
        yield url
    finally:
        stop_process(proc)


def test_a_branded_bridge_looks_like_the_operators_site(
    branded: str, new_context: Callable[..., Any], artifacts: Path, axe: Path
) -> None:
    page = new_context(locale="de-DE", bypass_csp=True, viewport=DESKTOP).new_page()
    page.goto(f"{branded}/")
    assert page.locator("html").get_attribute("lang") == "it", "German is not offered: default"
    assert page.title() == "Accedi per chattare · Acme Assistenza"
    assert page.locator(".brand img.logo").evaluate("img => img.naturalWidth") == 64
    assert page.locator("footer").inner_text().startswith("Assistenza clienti")
    assert page.locator("p.foot").inner_text() == "Acme S.p.A. · P.IVA 01234567890"
    colour = page.locator("a.signin").evaluate("a => getComputedStyle(a).backgroundColor")
    assert colour == "rgb(10, 125, 79)"
    assert re.fullmatch(r"Accedi con Acme Login", page.locator("a.signin").inner_text())
    look(page, axe, artifacts, "branded-first-visit")
