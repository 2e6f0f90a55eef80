"""Issue 11: the visitor's pages — language, what each page says, the operator's own look."""

from __future__ import annotations

import html
import json
import re
import tomllib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import jinja2
import pytest
from starlette.testclient import TestClient

from bridge import cli
from bridge.pages import (
    Branding,
    InlineGettext,
    Pages,
    negotiate,
    shipped_languages,
    text_direction,
)
from bridge.settings import SettingsError, parse_settings
from bridge.web import create_app
from tests.conftest import PUBLIC_URL, SESSION_SECRET, TILEDESK_SECRET, login, start_login
from tests.idp import FakeIdP

REPO = Path(__file__).resolve().parents[1]


def text_of(page: str, element_id: str) -> str:
    """The visible text of the element with this id (tags dropped, spaces collapsed)."""
    match = re.search(rf'<(\w+)[^>]* id="{element_id}"[^>]*>(.*?)</\1>', page, re.S)
    assert match, f"no #{element_id} on the page"
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", match.group(2))).split())


def heading(page: str) -> str:
    match = re.search(r"<h1>(.*?)</h1>", page, re.S)
    assert match, "the page has no h1"
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", match.group(1))).split())


def message(page: str) -> str:
    match = re.search(r'<p class="message" role="alert">(.*?)</p>', page, re.S)
    assert match, "the page has no message"
    return html.unescape(match.group(1))


def config_of(page: str) -> dict[str, Any]:
    match = re.search(r'id="bridge-config">(.*?)</script>', page, re.S)
    assert match
    return json.loads(match.group(1))  # type: ignore[no-any-return]


def client_for(settings_data: dict[str, Any]) -> TestClient:
    app = create_app(parse_settings(settings_data), warm_up=False)
    return TestClient(app, base_url=PUBLIC_URL, follow_redirects=False)


# --- the visitor's language -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("it-IT,it;q=0.9,en;q=0.8", "it"),
        ("pt-BR", "pt"),
        ("ja, de;q=0.5, fr;q=0.7", "fr"),
        ("fr;q=0, es", "es"),
        ("*", "en"),
        ("", "en"),
        ("xx;q=abc, de", "de"),
    ],
)
def test_the_browsers_languages_pick_the_best_one_the_bridge_speaks(
    header: str, expected: str
) -> None:
    assert negotiate(header, ("en", "it", "es", "fr", "de", "pt"), "en") == expected


@pytest.mark.parametrize(("language", "direction"), [("it", "ltr"), ("ar", "rtl"), ("he", "rtl")])
def test_the_text_direction_follows_the_language(language: str, direction: str) -> None:
    assert text_direction(language) == direction


def test_an_italian_browser_gets_the_page_in_italian(client: TestClient) -> None:
    answer = client.get("/", headers={"Accept-Language": "it-IT,it;q=0.9"})
    assert answer.headers["content-language"] == "it"
    page = answer.text
    assert '<html lang="it" dir="ltr">' in page
    assert heading(page) == "Accedi per chattare"
    assert ">Accedi con Acme SSO</a>" in page


def test_an_explicit_choice_wins_over_the_browser_and_is_remembered(client: TestClient) -> None:
    first = client.get("/?lang=de", headers={"Accept-Language": "it"})
    assert '<html lang="de" dir="ltr">' in first.text
    assert "bridge_lang=de" in first.headers["set-cookie"]
    later = client.get("/login", headers={"Accept-Language": "it"})
    assert '<html lang="de" dir="ltr">' in later.text
    assert heading(later.text) == "Wählen Sie, wie Sie sich anmelden möchten"


def test_the_language_links_keep_the_chooser_and_its_next_path(client: TestClient) -> None:
    page = client.get("/login?next=/help", headers={"Accept-Language": "it"}).text
    assert '<a href="/login?next=%2Fhelp&amp;lang=fr" lang="fr" hreflang="fr">Français</a>' in page
    error = client.get("/nope").text
    assert '<a href="/?lang=it" lang="it" hreflang="it">Italiano</a>' in error


def test_a_page_negotiates_the_visitors_language_once(
    client: TestClient, idp: FakeIdP, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every string on the page asked for the language again: 7 negotiations per page load."""
    assert login(client, idp).status_code == 303
    calls: list[str | None] = []
    original = Pages.negotiate

    def counted(self: Pages, accept_language: str | None, chosen: str | None) -> str:
        calls.append(accept_language)
        return original(self, accept_language, chosen)

    monkeypatch.setattr(Pages, "negotiate", counted)
    page = client.get("/", headers={"Accept-Language": "it-IT,it;q=0.9"})
    assert page.status_code == 200
    assert config_of(page.text)["messages"]["connected"] == "Chat collegata."
    assert calls == ["it-IT,it;q=0.9"]


def test_a_language_outside_the_operators_list_falls_back_to_the_default(
    settings_data: dict[str, Any], idps: dict[str, FakeIdP]
) -> None:
    settings_data["pages"] = {"languages": ["en", "it"], "default_language": "it"}
    with client_for(settings_data) as client:
        assert '<html lang="it"' in client.get("/", headers={"Accept-Language": "de"}).text
        assert '<html lang="it"' in client.get("/?lang=fr").text
        page = client.get("/", headers={"Accept-Language": "en-GB"}).text
        assert '<html lang="en"' in page
        assert 'hreflang="fr"' not in page


def test_the_widget_speaks_the_visitors_language_unless_the_operator_chose_one(
    settings_data: dict[str, Any], idps: dict[str, FakeIdP]
) -> None:
    with client_for(settings_data) as client:
        page = client.get("/", headers={"Accept-Language": "es"}).text
        assert config_of(page)["tiledeskSettings"]["lang"] == "es"
    settings_data["tiledesk"]["widget"] = {"lang": "en"}
    with client_for(settings_data) as client:
        page = client.get("/", headers={"Accept-Language": "es"}).text
        assert config_of(page)["tiledeskSettings"]["lang"] == "en"


def test_the_pages_script_gets_its_words_from_the_page_in_the_visitors_language(
    client: TestClient, idp: FakeIdP
) -> None:
    login(client, idp)
    page = client.get("/", headers={"Accept-Language": "it"}).text
    messages = config_of(page)["messages"]
    assert messages["connecting"] == "Collegamento alla chat…"
    assert text_of(page, "chat-status") == messages["connecting"]
    assert messages["notLoaded"].startswith("Non è stato possibile caricare la chat.")
    script = (REPO / "templates" / "static" / "bridge.js").read_text()
    assert re.findall(r'status\("', script) == [], "bridge.js must not hold visible English"


def test_an_error_page_is_in_the_visitors_language(client: TestClient) -> None:
    page = client.get("/callback/acme?state=forged&code=x", headers={"Accept-Language": "it"})
    assert page.status_code == 400
    assert heading(page.text) == "Non siamo riusciti a farti accedere"
    assert message(page.text).startswith("Questo tentativo di accesso è scaduto")
    assert text_of(page.text, "try-again") == "Riprova"


# --- what a visitor met (issue 11, item 5) ----------------------------------------------------


def test_a_missing_page_is_not_called_a_sign_in_failure(client: TestClient) -> None:
    page = client.get("/nope")
    assert page.status_code == 404
    assert heading(page.text) == "Page not found"
    assert "sign you in" not in page.text
    assert message(page.text) == (
        "There is no page at this address. Check the link, or go to the start page."
    )
    assert 'id="try-again"' not in page.text


@pytest.mark.parametrize("fault", [httpx.ConnectError, httpx.ProxyError])
def test_an_idp_that_cannot_be_reached_is_named_and_said_to_be_unreachable(
    client: TestClient, idp: FakeIdP, fault: type[Exception], caplog: pytest.LogCaptureFixture
) -> None:
    idp.faults["token"] = fault
    with caplog.at_level("WARNING", logger="bridge.web"):
        page = login(client, idp)
    assert f"could not reach the token endpoint {idp.base}/token: {fault.__name__}" in (
        caplog.text
    ), "the operator's log names the URL that failed"
    assert page.status_code == 502
    assert text_of(page.text, "error-code") == "idp_error"
    assert message(page.text) == (
        "We could not reach Acme SSO: it may be down, or our server cannot connect to it. "
        "Please try again in a few minutes."
    )
    assert text_of(page.text, "try-again") == "Try again"


def test_an_idp_that_answers_with_an_error_is_named(client: TestClient, idp: FakeIdP) -> None:
    idp.faults["token"] = httpx.Response(500, text="oops")
    page = login(client, idp)
    assert page.status_code == 502
    assert message(page.text) == (
        "Acme SSO answered with an error, so you were not signed in. "
        "Please try again in a few minutes."
    )


def test_signing_out_confirms_it_and_says_the_idp_session_ended_too(
    client: TestClient, idp: FakeIdP
) -> None:
    login(client, idp)
    answer = client.post("/logout", headers={"Origin": PUBLIC_URL})
    assert answer.status_code == 303
    assert answer.headers["location"].startswith(f"{idp.base}/logout?")
    # The IdP sends the visitor back to <public_url>/, as registered there.
    page = client.get("/")
    assert heading(page.text) == "You are signed out"
    assert text_of(page.text, "signed-out") == (
        "You are signed out You were also signed out of Acme SSO."
    )
    assert 'href="/login/acme"' in page.text
    again = client.get("/")
    assert heading(again.text) == "Sign in to chat"


def test_signing_out_where_the_idp_cannot_end_its_session_says_so(
    settings_data: dict[str, Any], idps: dict[str, FakeIdP]
) -> None:
    idps["acme"].discovery_overrides["end_session_endpoint"] = None
    with client_for(settings_data) as client:
        login(client, idps["acme"])
        answer = client.post("/logout", headers={"Origin": PUBLIC_URL})
        assert answer.headers["location"] == f"{PUBLIC_URL}/"
        page = client.get("/", headers={"Accept-Language": "it"})
        assert heading(page.text) == "Disconnessione effettuata"
        assert text_of(page.text, "signed-out") == (
            "Disconnessione effettuata La sessione su Acme SSO potrebbe essere ancora aperta. "
            "Se il computer è condiviso, esci anche da lì."
        )


def test_a_first_visit_is_not_told_it_signed_out(client: TestClient) -> None:
    client.cookies.set("bridge_signed_out", "nobody:1")
    page = client.get("/")
    assert heading(page.text) == "Sign in to chat"


@pytest.mark.parametrize(
    ("make_error", "retry"),
    [
        ("state_mismatch", True),
        ("access_denied", True),
        ("idp_timeout", True),
        ("idp_denied", True),
        ("id_token_invalid", False),
    ],
)
def test_error_pages_offer_to_try_the_same_provider_again_where_that_can_help(
    settings_data: dict[str, Any],
    request: pytest.FixtureRequest,
    idp: FakeIdP,
    make_error: str,
    retry: bool,
) -> None:
    settings_data["providers"]["acme"]["access"] = {"email_domains": ["acme.test"]}
    client: TestClient = request.getfixturevalue("client")
    if make_error == "state_mismatch":
        page = client.get("/callback/acme?state=forged&code=x")
    elif make_error == "access_denied":
        idp.user["email"] = "eve@elsewhere.test"
        page = login(client, idp)
    elif make_error == "idp_timeout":
        idp.faults["token"] = httpx.ReadTimeout
        page = login(client, idp)
    elif make_error == "idp_denied":
        _code, state = idp.authorize(start_login(client))
        page = client.get(
            "/callback/acme",
            params={"state": state, "error": "access_denied", "error_description": "Nope."},
        )
    else:
        idp.tamper = lambda claims, header: claims.update(aud="someone-else")
        page = login(client, idp)
    assert page.status_code in (400, 401, 403, 504), page.text
    assert text_of(page.text, "start-over") == "Back to the start"
    if retry:
        assert re.search(r'<a class="button" id="try-again" href="/login/acme">', page.text)
        assert text_of(page.text, "try-again") == "Try again"
    else:
        assert 'id="try-again"' not in page.text


def test_the_idps_own_words_are_quoted_not_passed_off_as_ours(
    client: TestClient, idp: FakeIdP
) -> None:
    _code, state = idp.authorize(start_login(client))
    page = client.get(
        "/callback/acme",
        params={"state": state, "error": "access_denied", "error_description": "<b>No</b>"},
        headers={"Accept-Language": "fr"},
    )
    assert page.status_code == 403
    assert message(page.text) == (
        "Acme SSO n'a pas validé la connexion. Réessayez ou contactez l'assistance."
    )
    assert "<blockquote>&lt;b&gt;No&lt;/b&gt;</blockquote>" in page.text


def _shipped_settings() -> dict[str, Any]:
    data = tomllib.loads((REPO / "settings.toml").read_text())
    data["session"]["secret"] = SESSION_SECRET
    data["tiledesk"]["secret"] = TILEDESK_SECRET
    return data


def test_the_demo_button_says_what_it_signs_in_with_once() -> None:
    with client_for(_shipped_settings()) as client:
        page = client.get("/").text
    buttons = re.findall(r'<a class="signin button" href="/login/dev">([^<]*)</a>', page)
    assert buttons == ["Sign in with Development identity provider"]


def test_the_dev_idp_page_keeps_the_redirect_uri_whole() -> None:
    login_page = (REPO / "templates" / "devidp" / "login.html").read_text()
    assert "break-all" not in login_page
    assert re.search(r"\.uri \{[^}]*overflow-wrap: anywhere", login_page)


# --- the operator's own look (issue 11, item 2) -----------------------------------------------


def _branded(tmp_path: Path, settings_data: dict[str, Any]) -> dict[str, Any]:
    custom = tmp_path / "branding"
    custom.mkdir()
    (custom / "base.html").write_text(
        '{% extends "bridge/base.html" %}\n'
        '{% block footer %}<footer id="acme-footer">Acme Inc.</footer>{% endblock %}\n'
    )
    (tmp_path / "logo.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"/>')
    settings_data["pages"] = {
        "templates_dir": str(custom),
        "title": "Acme help",
        "logo": str(tmp_path / "logo.svg"),
        "accent": "#0a7d4f",
    }
    return settings_data


def test_an_operator_overrides_one_block_and_inherits_the_rest(
    tmp_path: Path, settings_data: dict[str, Any], idps: dict[str, FakeIdP]
) -> None:
    with client_for(_branded(tmp_path, settings_data)) as client:
        page = client.get("/", headers={"Accept-Language": "it"}).text
        assert '<footer id="acme-footer">Acme Inc.</footer>' in page
        assert heading(page) == "Accedi per chattare"  # index.html is still the built-in one
        assert "<title>Accedi per chattare · Acme help</title>" in page
        assert '<img class="logo" src="/brand/logo.svg" alt="">' in page
        assert '<link rel="stylesheet" href="/brand.css">' in page
        css = client.get("/brand.css")
        assert css.headers["content-type"].startswith("text/css")
        assert "--accent: #0a7d4f; --accent-ink: #ffffff;" in css.text
        logo = client.get("/brand/logo.svg")
        assert logo.status_code == 200
        assert logo.headers["content-type"] == "image/svg+xml"
        assert "Acme Inc." in client.get("/nope").text


def test_the_branding_table_sets_footer_and_support_link_without_a_template(
    settings_data: dict[str, Any], idps: dict[str, FakeIdP]
) -> None:
    settings_data["pages"] = {
        "footer": "Acme Inc., Via Roma 1, Milano",
        "support_url": "mailto:help@acme.test",
        "logo": "https://cdn.acme.test/logo.png",
        "accent": "#ffd400",
    }
    with client_for(settings_data) as client:
        page = client.get("/login", headers={"Accept-Language": "es"})
        assert "<p>Acme Inc., Via Roma 1, Milano</p>" in page.text
        assert '<a href="mailto:help@acme.test">¿Necesitas ayuda? Contacta con soporte</a>' in (
            page.text
        )
        csp = page.headers["content-security-policy"]
        assert "img-src 'self' data: https://cdn.acme.test;" in csp
        # A light accent keeps readable text: dark ink on the buttons, no yellow links.
        css = client.get("/brand.css").text
        assert "--accent-ink: #111111; --accent-text: #1c2430;" in css


@pytest.mark.parametrize(
    ("pages", "line"),
    [
        ({"accent": "green"}, "pages.accent: must be a colour like '#1f5fd1'"),
        ({"accent": "#12345"}, "pages.accent: must be a colour like '#1f5fd1'"),
        ({"templates_dir": "missing"}, "pages.templates_dir: "),
        ({"languages": ["en", "xx"]}, "pages.languages: no catalogue for 'xx'"),
        ({"languages": ["it"]}, "pages.default_language: 'en' is not in languages (it)"),
        ({"logo": "logo.bmp"}, "pages.logo: must be an image"),
        ({"support_url": "javascript:alert(1)"}, "pages.support_url: must be an http(s) URL"),
        ({"tilte": "Acme"}, "pages.tilte: unknown key"),
    ],
)
def test_a_bad_pages_value_is_one_line_naming_the_key(
    pages: dict[str, Any], line: str, tmp_path: Path
) -> None:
    data = {**_shipped_settings(), "pages": pages}
    with pytest.raises(SettingsError) as caught:
        parse_settings(data, tmp_path)
    assert len(caught.value.problems) == 1, caught.value.problems
    assert caught.value.problems[0].startswith(line), caught.value.problems


def test_a_template_that_does_not_parse_fails_check_naming_the_key_and_line(
    tmp_path: Path,
) -> None:
    custom = tmp_path / "mine"
    custom.mkdir()
    (custom / "error.html").write_text('{% extends "base.html" %}\n{% block main %}\n{{ oops }\n')
    data = {**_shipped_settings(), "pages": {"templates_dir": "mine"}}
    with pytest.raises(SettingsError) as caught:
        parse_settings(data, tmp_path)
    assert caught.value.problems == [
        "pages.templates_dir: a template does not parse: error.html line 3: unexpected '}'"
    ]


def test_templates_dir_is_relative_to_the_settings_file(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    data = {**_shipped_settings(), "pages": {"templates_dir": "mine"}}
    assert parse_settings(data, tmp_path).pages.templates_dir == tmp_path / "mine"


def test_check_names_each_bad_pages_key_on_its_own_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "base.html").write_text("{% block main %}\n{{ oops }\n")
    (tmp_path / ".secrets").mkdir()
    (tmp_path / ".secrets" / "session_secret").write_text(SESSION_SECRET)
    (tmp_path / ".secrets" / "tiledesk_secret").write_text(TILEDESK_SECRET)
    settings = (REPO / "settings.toml").read_text()
    settings += '\n[pages]\ntemplates_dir = "mine"\naccent = "green"\n'
    (tmp_path / "settings.toml").write_text(settings)
    status = cli.main(["check", "--settings", str(tmp_path / "settings.toml")])
    _out, err = capsys.readouterr()
    assert status == 2
    assert err.splitlines() == [
        "pages.templates_dir: a template does not parse: base.html line 2: unexpected '}'",
        "pages.accent: must be a colour like '#1f5fd1' (#rgb or #rrggbb), got 'green'",
    ]


# --- constant messages translated when a template compiles (InlineGettext) ----------

PROVIDERS = [SimpleNamespace(name="acme", display_name="Acme <SSO>")]
ADA = SimpleNamespace(display_name="Ada <b>", email="ada@acme.test")
EVERY_PAGE: list[tuple[str, dict[str, Any]]] = [
    ("index.html", {"user": ADA, "show_token": True, "signed_out": None, "config_json": "{}"}),
    ("index.html", {"user": SimpleNamespace(display_name="Bo", email=None), "config_json": "{}"}),
    ("index.html", {"user": None, "signed_out": {"provider": "Acme", "idp_ended": True}}),
    ("index.html", {"user": None, "signed_out": {"provider": "Acme", "idp_ended": False}}),
    ("index.html", {"user": None, "signed_out": None, "config_json": "{}"}),
    ("chooser.html", {"next": "/", "login_path": lambda name, next_path: f"/login/{name}"}),
    (
        "error.html",
        {"title": "T", "message": "M", "idp_text": "x<y", "code": "idp_error", "retry_url": "/r"},
    ),
    ("error.html", {"title": "T", "message": "M", "code": "state_mismatch"}),
    ("site_logout.html", {"site": "https://shop.test", "user": ADA, "action": "/a", "back": "/"}),
    ("site_logout.html", {"site": "https://shop.test", "user": None, "action": "/a", "back": "/"}),
]


def render_all(pages: Pages) -> list[str]:
    common = {"providers": PROVIDERS, "lang_url": lambda code: f"/?lang={code}"}
    return [
        pages.render(language, template, {**common, **context})
        for language in pages.languages
        for template, context in EVERY_PAGE
    ]


def test_every_page_reads_the_same_whether_its_messages_are_translated_early_or_late() -> None:
    brand = Branding(title="Acme", footer="F & co", support_url="https://help.test")
    for branding in (None, brand):
        early = Pages(languages=shipped_languages(), default_language="en", branding=branding)
        late = Pages(
            languages=shipped_languages(),
            default_language="en",
            branding=branding,
            inline_gettext=False,
        )
        assert render_all(early) == render_all(late)
    italian = early.languages.index("it") * len(EVERY_PAGE)
    assert "Esci" in render_all(early)[italian]  # Italian, not the msgid, is shown


def compiled(pages: Pages, language: str, template: str) -> str:
    env = pages._envs[language]
    assert env.loader is not None
    source, _name, _file = env.loader.get_source(env, template)
    return str(env.compile(source, template, raw=True))


def test_a_constant_message_is_text_in_the_compiled_page_and_one_with_variables_is_a_call() -> None:
    pages = Pages(languages=("en", "it"), default_language="en")
    code = compiled(pages, "it", "index.html")
    assert "Esci" in code and "'Sign out'" not in code  # translated into the page's text
    assert "'Hello, %(name)s'" in code  # looked up at render time, with its variable
    assert "'Sign out'" in compiled(
        Pages(languages=("en", "it"), default_language="en", inline_gettext=False),
        "it",
        "index.html",
    )


def test_only_a_plain_call_with_one_string_is_translated_early() -> None:
    def environment(inline: bool) -> jinja2.Environment:
        env = jinja2.Environment(
            autoescape=True, extensions=["jinja2.ext.i18n", *([InlineGettext] if inline else [])]
        )
        catalogue = {
            "a": "<A>",
            "b %% c": "B %% C",
            "d %(n)s": "D %(n)s",
            "ef": "EF",
            "k %(x)s": "K %(x)s",
        }

        def gettext(message: str) -> str:
            return catalogue.get(message, message)

        env.install_gettext_callables(  # type: ignore[attr-defined]
            gettext, lambda s, p, n: s, newstyle=True
        )
        env.inline_gettext = gettext  # type: ignore[attr-defined]
        return env

    source = (
        "{{ _('a') }}|{{ _('b %% c') }}|{{ _('d %(n)s', n='<n>') }}|{{ _('e' 'f') }}"
        "|{{ o._('a') }}|{{ _('a') ~ '<x>' }}|{% set t = _('a') %}{{ t }}|{{ _('a')|upper }}"
    )
    context = {"o": SimpleNamespace(_=lambda s: f"[{s}]")}
    early, late = environment(True), environment(False)
    assert early.from_string(source).render(context) == late.from_string(source).render(context)
    assert early.from_string(source).render(context) == (
        "<A>|B % C|D &lt;n&gt;|EF|[a]|<A>&lt;x&gt;|<A>|<A>"
    )
    code = early.compile(source, raw=True)
    assert "'<A>'" in code and "'d %(n)s'" in code and "'ef'" in code
    # A message that cannot be formatted alone fails at render time, as before.
    with pytest.raises(KeyError):
        early.from_string("{{ _('k %(x)s') }}").render()
