"""Issue 11: every visible string goes through the catalogues, and every catalogue is complete."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import jinja2
import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from bridge.pages import LOCALES_DIR, TEMPLATES_DIR, compile_catalogue, shipped_languages

REPO = Path(__file__).resolve().parents[1]
#: Attributes a person reads or hears (screen readers) that must be translated too.
VISIBLE_ATTRIBUTES = {"alt", "title", "placeholder", "aria-label", "aria-description", "value"}
#: The development IdP stands in for a company's IdP, whose pages are its own: English only.
NOT_TRANSLATED = {"devidp"}
MARK = "\x00"
PLACEHOLDER = re.compile(r"%\(\w+\)s|\{\w+\}")


def _words(text: str) -> str:
    return " ".join(text.replace(MARK, " ").split())


class _TextFinder(HTMLParser):
    """Collects text a person would see in a template's literal HTML."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        for name, value in attrs:
            text = _words(value or "")
            if name in VISIBLE_ATTRIBUTES and re.search(r"[^\W\d_]", text):
                self.found.append(f'{name}="{text}"')

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip = max(0, self._skip - 1)

    def handle_data(self, data: str) -> None:
        if not self._skip and re.search(r"[^\W\d_]", _words(data)):
            self.found.append(_words(data))


def unmarked_strings(source: str) -> list[str]:
    """Words written straight into a template instead of through _(...)."""
    env = jinja2.Environment(extensions=["jinja2.ext.i18n"], autoescape=True)
    literal = []
    for _line, kind, value in env.lex(source):
        # Every expression and tag becomes a neutral marker; only literal HTML is left.
        literal.append(value if kind == "data" else MARK)
    finder = _TextFinder()
    finder.feed("".join(literal))
    finder.close()
    return finder.found


def templates() -> list[Path]:
    return sorted(
        p
        for p in TEMPLATES_DIR.rglob("*.html")
        if p.relative_to(TEMPLATES_DIR).parts[0] not in NOT_TRANSLATED
    )


def test_the_scanner_finds_text_and_attributes_that_are_not_marked() -> None:
    source = (
        '<p>{{ _("Fine") }}</p><h1>Hello {{ name }}</h1>'
        '<img alt="Our logo" src="{{ src }}"><a aria-label="{{ _(\'Fine\') }}">&rarr;</a>'
        "<style>p { color: red }</style><script>var x = 'code';</script>"
    )
    assert unmarked_strings(source) == ["Hello", 'alt="Our logo"']


@pytest.mark.parametrize("template", templates(), ids=lambda p: p.name)
def test_templates_hold_no_string_outside_the_catalogue(template: Path) -> None:
    assert unmarked_strings(template.read_text(encoding="utf-8")) == []


def _extracted() -> set[str]:
    method_map = [
        ("bridge/errors.py", "python"),
        ("bridge/web.py", "python"),
        ("templates/*.html", "jinja2"),
    ]
    return {
        message if isinstance(message, str) else message[0]
        for _file, _line, message, _comments, _context in extract_from_dir(
            str(REPO), method_map=method_map
        )
    }


def _catalogue_ids(path: Path) -> dict[str, str]:
    with path.open("rb") as source:
        catalogue = read_po(source)
    return {
        str(m.id): (str(m.string) if not m.fuzzy else "") for m in catalogue if m.id and m.id != ""
    }


def test_babel_cfg_names_every_file_the_test_extracts_from() -> None:
    config = (REPO / "babel.cfg").read_text()
    assert re.findall(r"^\[(\w+): ([^\]]+)\]$", config, re.M) == [
        ("python", "bridge/errors.py"),
        ("python", "bridge/web.py"),
        ("jinja2", "templates/*.html"),
    ]


def test_the_template_catalogue_holds_every_string_of_the_code() -> None:
    extracted = _extracted()
    assert extracted, "nothing was extracted"
    in_pot = set(_catalogue_ids(LOCALES_DIR / "messages.pot"))
    assert sorted(extracted - in_pot) == [], "run `make messages` and translate what is new"
    assert sorted(in_pot - extracted) == [], "run `make messages`: the .pot holds old strings"


def test_the_bridge_ships_the_six_languages() -> None:
    assert shipped_languages() == ("en", "de", "es", "fr", "it", "pt")


@pytest.mark.parametrize("language", [lang for lang in shipped_languages() if lang != "en"])
def test_every_catalogue_translates_every_message(language: str) -> None:
    wanted = set(_catalogue_ids(LOCALES_DIR / "messages.pot"))
    translated = _catalogue_ids(LOCALES_DIR / f"{language}.po")
    missing = sorted(m for m in wanted if not translated.get(m))
    assert missing == [], f"{language}.po misses (or marks fuzzy) these messages"
    for message in wanted:
        assert sorted(PLACEHOLDER.findall(translated[message])) == sorted(
            PLACEHOLDER.findall(message)
        ), f"{language}.po changes the placeholders of {message!r}"
    compiled = compile_catalogue(LOCALES_DIR / f"{language}.po")
    assert compiled.gettext("Try again") != "Try again"


def test_no_compiled_catalogue_is_committed() -> None:
    assert list(LOCALES_DIR.rglob("*.mo")) == []
