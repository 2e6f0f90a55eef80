"""Issue 11 on customer sites: the embed script's words come from the bridge, in the visitor's
language, and the widget is told that language too."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from bridge.pages import LOCALES_DIR, STATIC_DIR, compile_catalogue
from tests.idp import FakeIdP
from tests.security import app_client
from tests.test_embed import SHOP, settings_with

ITALIAN = compile_catalogue(LOCALES_DIR / "it.po")
GERMAN = compile_catalogue(LOCALES_DIR / "de.po")


@pytest.fixture
def make_client(idps: dict[str, FakeIdP]) -> Iterator[Any]:
    def make(**pages: Any) -> Any:
        data = settings_with({SHOP: {}})
        data["pages"] = pages
        return app_client(data)

    yield make


def config(client: TestClient, *, accept: str | None = None, lang: str | None = None) -> Any:
    headers = {"Origin": SHOP, **({"Accept-Language": accept} if accept else {})}
    return client.get("/embed/config", params={"lang": lang} if lang else {}, headers=headers)


def test_an_italian_browser_gets_the_sites_words_and_the_widget_in_italian(
    make_client: Any,
) -> None:
    with make_client() as client:
        answer = config(client, accept="it-IT,it;q=0.9,en;q=0.5")
    body = answer.json()
    assert body["lang"] == "it"
    assert body["tiledeskSettings"]["lang"] == "it"
    messages = body["messages"]
    assert messages["signIn"] == ITALIAN.gettext("Sign in to chat") != "Sign in to chat"
    assert messages["errors"]["access_denied"] == ITALIAN.gettext(
        "Your account may not use this chat."
    )
    assert "{code}" in messages["otherError"]
    assert set(answer.headers["vary"].replace(" ", "").split(",")) == {"Origin", "Accept-Language"}
    assert answer.headers["content-language"] == "it"


def test_the_page_language_the_script_passes_wins_over_the_browsers(make_client: Any) -> None:
    with make_client() as client:
        for lang in ("de", "de-DE", "DE-ch"):
            body = config(client, accept="it", lang=lang).json()
            assert body["lang"] == "de", lang
            assert body["messages"]["signIn"] == GERMAN.gettext("Sign in to chat")
        # A page language the bridge does not offer: the browser's choice, then the default.
        assert config(client, accept="it", lang="nl").json()["lang"] == "it"
        assert config(client, lang="nl").json()["lang"] == "en"


def test_languages_outside_the_operators_list_fall_back_to_the_default(
    make_client: Any,
) -> None:
    with make_client(languages=["en", "fr"], default_language="fr") as client:
        assert config(client, accept="it-IT").json()["lang"] == "fr"
        assert config(client, accept="it-IT", lang="it").json()["lang"] == "fr"
        assert config(client, accept="en-GB").json()["lang"] == "en"


def test_the_operators_widget_language_wins(idps: dict[str, FakeIdP]) -> None:
    data = settings_with({SHOP: {}})
    data["tiledesk"]["widget"] = {"lang": "es"}
    with app_client(data) as client:
        body = config(client, accept="it").json()
    assert body["lang"] == "it"
    assert body["tiledeskSettings"]["lang"] == "es"


def test_embed_js_shows_no_words_of_its_own() -> None:
    """Everything a visitor reads comes from /embed/config, already translated: a sentence
    written into the script would reach every visitor in English."""
    source = (STATIC_DIR / "embed.js").read_text()
    code = "\n".join(re.sub(r"(^|\s)//.*$", "", line) for line in source.splitlines())
    code = re.sub(r"console\.\w+\([^;]*\);", "", code)  # for the site's developer, not visitors
    strings = re.findall(r'"((?:[^"\\]|\\.)*)"', code)
    assert "tiledesk-bridge:result" in strings, "the scanner reads the script's strings"
    sentences = [text for text in strings if re.search(r"[A-Z][a-z]* [a-z]+ [a-z]+", text)]
    assert sentences == []
