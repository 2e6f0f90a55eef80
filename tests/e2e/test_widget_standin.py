"""The Tiledesk widget stand-in keeps the real loader's contract (checked without the bridge)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest

pytestmark = pytest.mark.e2e

SNIPPET = """
window.tiledeskSettings = {projectid: "64f0c0ffee00000000000001", autoStart: false};
(function (d, s, id) {
  var i = function () { i.c(arguments); };
  i.q = [];
  i.c = function (args) { i.q.push(args); };
  window.Tiledesk = i;
  var js = d.createElement(s); js.id = id; js.async = true; js.src = "%(src)s";
  var first = d.getElementsByTagName(s)[0]; first.parentNode.insertBefore(js, first);
})(document, "script", "%(id)s");
window.events = [];
window.Tiledesk("onAuthStateChanged", function (e) {
  window.events.push([e.detail.isLogged, e.detail.user_id]);
});
window.queued = window.Tiledesk("signInWithCustomToken", "%(token)s");
"""


def _token(payload: dict[str, Any]) -> str:
    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"JWT {part({'alg': 'HS256'})}.{part(payload)}.c2ln"


def _host_page(
    new_context: Callable[..., Any],
    widget_origin: str,
    *,
    script_id: str = "tiledesk-jssdk",
    init: str | None = None,
) -> Any:
    context = new_context()
    page = context.new_page()
    if init:
        page.add_init_script(init)
    html = "<!doctype html><html><head><script></script></head><body><script>{}</script></body>"
    body = SNIPPET % {
        "src": f"{widget_origin}/launch.js",
        "id": script_id,
        "token": _token({"_id": "64f0c0ffee00000000000001_acme_ab", "firstname": "Zoë"}),
    }
    page.route(
        f"{widget_origin}/host.html",
        lambda route: route.fulfill(content_type="text/html", body=html.format(body)),
    )
    page.goto(f"{widget_origin}/host.html")
    return page


def test_queued_calls_are_drained_and_the_dispatcher_returns_promises(
    new_context: Callable[..., Any], widget_origin: str
) -> None:
    page = _host_page(new_context, widget_origin)
    page.wait_for_function("window.events.length === 1")
    assert page.evaluate("window.queued") is None
    assert page.evaluate("window.events") == [[True, "64f0c0ffee00000000000001_acme_ab"]]
    assert page.evaluate("window.__tiledeskSettingsSeen") == {
        "projectid": "64f0c0ffee00000000000001",
        "autoStart": False,
    }
    events = page.evaluate("window.Tiledesk('logout').then(() => window.events)")
    assert events[-1] == [False, None]
    relogin = page.evaluate(
        "window.tiledesk.signInWithCustomToken(window.__tiledeskCalls[1][1]).then(u => u._id)"
    )
    assert relogin == "64f0c0ffee00000000000001_acme_ab"
    names = [call[0] for call in page.evaluate("window.__tiledeskCalls")]
    assert names == [
        "onAuthStateChanged",
        "signInWithCustomToken",
        "logout",
        "signInWithCustomToken",
    ]
    assert page.evaluate("window.__widgetErrors") == []


def test_a_refused_token_rejects_and_signs_the_widget_out(
    new_context: Callable[..., Any], widget_origin: str
) -> None:
    page = _host_page(new_context, widget_origin, init="window.__widgetRejectTokens = 2")
    page.wait_for_function("window.__widgetState.started")
    outcome = page.evaluate(
        "window.Tiledesk('signInWithCustomToken', 'JWT a.b.c').then(() => 'ok', e => e.message)"
    )
    assert outcome == "401 Unauthorized"
    assert page.evaluate("window.__widgetState.isLogged") is False
    assert page.evaluate("window.__widgetRejectTokens") == 0


def test_a_token_without_the_jwt_scheme_is_refused(
    new_context: Callable[..., Any], widget_origin: str
) -> None:
    page = _host_page(new_context, widget_origin)
    page.wait_for_function("window.__widgetState.started")
    outcome = page.evaluate(
        "window.Tiledesk('signInWithCustomToken', 'eyJ.eyJ.sig').then(() => 'ok', e => 'refused')"
    )
    assert outcome == "refused"
    assert any("JWT" in error for error in page.evaluate("window.__widgetErrors"))


def test_the_loader_needs_the_tiledesk_jssdk_script_id(
    new_context: Callable[..., Any], widget_origin: str
) -> None:
    page = _host_page(new_context, widget_origin, script_id="some-other-id")
    page.wait_for_function("window.__widgetErrors.length > 0")
    assert page.evaluate("window.__widgetErrors") == ['no <script id="tiledesk-jssdk"> on the page']
    assert page.evaluate("window.__widgetState.started") is False
