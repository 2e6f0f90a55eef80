"""The visitor's pages: templates (the operator's first), catalogues, language, branding.

The templates and catalogues live at the top of the repo (``templates/``, ``locales/``);
the wheel carries them inside the package, so both places are looked up here and
nowhere else. Catalogues are compiled from their ``.po`` files when the bridge starts.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import jinja2.ext
from babel import Locale
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations
from jinja2.lexer import (
    TOKEN_BLOCK_BEGIN,
    TOKEN_DOT,
    TOKEN_LPAREN,
    TOKEN_NAME,
    TOKEN_PIPE,
    TOKEN_RPAREN,
    TOKEN_STRING,
    TOKEN_TILDE,
    TOKEN_VARIABLE_BEGIN,
    Token,
    TokenStream,
)
from markupsafe import Markup

PACKAGE_DIR = Path(__file__).parent


def _asset_dir(name: str) -> Path:
    """In the wheel: bridge/<name>; in a checkout: <name>/ beside bridge/."""
    packaged = PACKAGE_DIR / name
    return packaged if packaged.is_dir() else PACKAGE_DIR.parent / name


TEMPLATES_DIR = _asset_dir("templates")
STATIC_DIR = TEMPLATES_DIR / "static"
LOCALES_DIR = _asset_dir("locales")
#: The built-in templates stay reachable as "bridge/<name>" from an operator's override.
BUILTIN_PREFIX = "bridge"
SOURCE_LANGUAGE = "en"
LANG_COOKIE = "bridge_lang"
EXTENSIONS = ["jinja2.ext.i18n"]


class InlineGettext(jinja2.ext.Extension):
    """Each ``_("constant")`` in a template translated once, when the template compiles.

    Every language has an environment of its own, so a message without variables has
    one translation per template; Jinja's i18n would look it up, mark it safe and
    %-format it on every render, through three context calls. The call is replaced by
    the text it returns under autoescape, marked safe (``("text"|safe)``, which Jinja
    folds into a constant). A call with variables, with more than one argument, or as
    an attribute (``x._("...")``), or in a tag that concatenates with ``~`` is left to the
    render. Message extraction
    (``make messages``) reads the template source, so it still sees the calls.
    """

    def __init__(self, environment: jinja2.Environment) -> None:
        super().__init__(environment)
        #: The environment's ``gettext(message) -> translation``; None: nothing is folded.
        environment.extend(inline_gettext=None)

    def filter_stream(self, stream: TokenStream) -> Iterator[Token]:
        tokens = list(stream)
        # Jinja folds a constant ``~`` into a plain string, dropping the text's safe mark:
        # a tag that concatenates is left to the render.
        concatenating: set[int] = set()
        start = 0
        for i, token in enumerate(tokens):
            if token.type in (TOKEN_VARIABLE_BEGIN, TOKEN_BLOCK_BEGIN):
                start = i
            elif token.type == TOKEN_TILDE:
                concatenating.add(start)
        tag = 0
        i = 0
        while i < len(tokens):
            if tokens[i].type in (TOKEN_VARIABLE_BEGIN, TOKEN_BLOCK_BEGIN):
                tag = i
            text = None if tag in concatenating else self._folded(tokens, i)
            if text is None:
                yield tokens[i]
                i += 1
                continue
            line = tokens[i].lineno
            yield Token(line, TOKEN_LPAREN, "(")
            yield Token(line, TOKEN_STRING, text)
            yield Token(line, TOKEN_PIPE, "|")
            yield Token(line, TOKEN_NAME, "safe")
            yield Token(line, TOKEN_RPAREN, ")")
            i += 4

    def _folded(self, tokens: list[Token], i: int) -> str | None:
        """The text of the call ``_("...")`` starting at ``tokens[i]``, if it is one."""
        gettext: Callable[[str], str] | None = getattr(self.environment, "inline_gettext", None)
        call = tokens[i : i + 4]
        if (
            gettext is None
            or [t.type for t in call] != [TOKEN_NAME, TOKEN_LPAREN, TOKEN_STRING, TOKEN_RPAREN]
            or call[0].value != "_"
            or (i > 0 and tokens[i - 1].type == TOKEN_DOT)
        ):
            return None
        try:
            # As jinja2.ext's newstyle gettext: a Markup, always %-formatted.
            return str(Markup(gettext(call[2].value)) % {})  # noqa: S704 - as Jinja does
        except (KeyError, TypeError, ValueError):
            return None  # the render fails (or formats) it exactly as Jinja would


def shipped_languages() -> tuple[str, ...]:
    """English (the source) plus every language with a catalogue in locales/."""
    return (SOURCE_LANGUAGE, *sorted(p.stem for p in LOCALES_DIR.glob("*.po")))


def compile_catalogue(po_file: Path) -> Translations:
    """A .po file, compiled in memory: no binary .mo in the repo or the wheel."""
    with po_file.open("rb") as source:
        catalogue = read_po(source, locale=po_file.stem)
    buffer = io.BytesIO()
    write_mo(buffer, catalogue, use_fuzzy=False)
    buffer.seek(0)
    return Translations(buffer)


def text_direction(language: str) -> str:
    return "rtl" if Locale.parse(language).character_order == "right-to-left" else "ltr"


def language_name(language: str) -> str:
    """The language's name in itself, as a visitor looking for it would read it."""
    name = Locale.parse(language).get_display_name(language) or language
    return name[:1].upper() + name[1:]


def negotiate(
    accept_language: str | None, allowed: Iterable[str], default: str, chosen: str | None = None
) -> str:
    """The visitor's explicit choice, else their browser's best match, else the default."""
    allowed = tuple(allowed)
    if chosen in allowed:
        return chosen
    ranked: list[tuple[float, int, str]] = []
    for position, item in enumerate((accept_language or "")[:1000].split(",")):
        tag, _sep, params = item.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                continue
        if tag and quality > 0:
            ranked.append((-quality, position, tag.strip().lower()))
    for _quality, _position, tag in sorted(ranked):
        for candidate in (tag, tag.split("-")[0]):
            if candidate in allowed:
                return candidate
    return default


def match_language(tag: str | None, allowed: Iterable[str]) -> str | None:
    """The offered language a page's ``lang`` (``de-CH``, ``pt``) names, if any."""
    if not tag:
        return None
    tag = tag.strip().lower()[:35]
    allowed = tuple(allowed)
    for candidate in (tag, tag.split("-")[0]):
        if candidate in allowed:
            return candidate
    return None


@dataclass(frozen=True)
class Branding:
    """What an operator sets in [pages] without writing a template."""

    title: str | None = None
    logo_url: str | None = None
    footer: str | None = None
    support_url: str | None = None
    accent: str | None = None

    def stylesheet(self) -> str:
        """The accent colour as CSS, with text colours that keep their contrast."""
        if self.accent is None:
            return ""
        ink = "#ffffff" if contrast(self.accent, "#ffffff") >= 4.5 else "#111111"
        text = self.accent if contrast(self.accent, "#ffffff") >= 4.5 else "#1c2430"
        return f":root {{ --accent: {self.accent}; --accent-ink: {ink}; --accent-text: {text}; }}\n"


def _luminance(colour: str) -> float:
    value = colour.lstrip("#")
    if len(value) == 3:
        value = "".join(c * 2 for c in value)
    channels = []
    for i in (0, 2, 4):
        c = int(value[i : i + 2], 16) / 255
        channels.append(c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4)
    return 0.2126 * channels[0] + 0.7152 * channels[1] + 0.0722 * channels[2]


def contrast(first: str, second: str) -> float:
    """WCAG 2 contrast ratio of two #rgb / #rrggbb colours."""
    high, low = sorted((_luminance(first), _luminance(second)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def template_loader(templates_dir: Path | None) -> jinja2.BaseLoader:
    """The operator's directory first, then the built-in templates (also as bridge/...)."""
    builtin = jinja2.FileSystemLoader(TEMPLATES_DIR)
    loaders: list[jinja2.BaseLoader] = []
    if templates_dir is not None:
        loaders.append(jinja2.FileSystemLoader(templates_dir))
    loaders += [builtin, jinja2.PrefixLoader({BUILTIN_PREFIX: builtin})]
    return jinja2.ChoiceLoader(loaders)


def template_problems(templates_dir: Path) -> list[str]:
    """Each template in an operator's directory that does not parse, with its line."""
    env = jinja2.Environment(
        loader=template_loader(templates_dir), extensions=EXTENSIONS, autoescape=True
    )
    problems = []
    for path in sorted(templates_dir.rglob("*.html")):
        name = path.relative_to(templates_dir).as_posix()
        try:
            env.parse(path.read_text(encoding="utf-8"), name=name)
        except jinja2.TemplateSyntaxError as exc:
            problems.append(f"{name} line {exc.lineno}: {exc.message}")
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"{name}: cannot read it: {exc}")
    return problems


class Pages:
    """One Jinja environment per language, each with its compiled catalogue."""

    def __init__(
        self,
        *,
        languages: Iterable[str],
        default_language: str,
        templates_dir: Path | None = None,
        branding: Branding | None = None,
        inline_gettext: bool = True,
    ) -> None:
        """``inline_gettext``: constant messages translated at compile time (InlineGettext)."""
        self.languages = tuple(languages)
        self.default_language = default_language
        self.branding = branding or Branding()
        loader = template_loader(templates_dir)
        self._envs: dict[str, jinja2.Environment] = {}
        self._translations: dict[str, Translations] = {}
        for language in self.languages:
            env = jinja2.Environment(
                loader=loader,
                autoescape=jinja2.select_autoescape(),
                auto_reload=False,
                extensions=[*EXTENSIONS, InlineGettext] if inline_gettext else EXTENSIONS,
            )
            po_file = LOCALES_DIR / f"{language}.po"
            translations = (
                compile_catalogue(po_file)
                if language != SOURCE_LANGUAGE
                else Translations()  # the source language: the msgids themselves
            )
            self._translations[language] = translations
            env.install_gettext_translations(translations, newstyle=True)  # type: ignore[attr-defined]
            env.inline_gettext = translations.gettext  # type: ignore[attr-defined]
            env.globals.update(
                lang=language,
                dir=text_direction(language),
                brand=self.branding,
                languages=[(code, language_name(code)) for code in self.languages],
            )
            self._envs[language] = env

    def gettext(self, language: str, message: str) -> str:
        return str(self._translations[language].gettext(message))

    def render(self, language: str, template: str, context: Mapping[str, Any]) -> str:
        return self._envs[language].get_template(template).render(context)

    def negotiate(self, accept_language: str | None, chosen: str | None) -> str:
        return negotiate(accept_language, self.languages, self.default_language, chosen)


__all__ = [
    "LANG_COOKIE",
    "STATIC_DIR",
    "TEMPLATES_DIR",
    "Branding",
    "InlineGettext",
    "Pages",
    "compile_catalogue",
    "contrast",
    "match_language",
    "negotiate",
    "shipped_languages",
    "template_problems",
]
