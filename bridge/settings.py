"""The settings.toml model: parse, resolve ``env:``/``file:`` secrets, validate.

One model, one place where a bad file becomes one clear line per problem,
each naming the key (``providers.acme.issuer: ...``).
"""

from __future__ import annotations

import copy
import difflib
import ipaddress
import json
import os
import re
import tomllib
import types
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    StrictBool,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from bridge import pages, providers

PROVIDER_NAME = re.compile(r"^[a-z0-9-]{1,32}$")
RESERVED_WIDGET_KEYS = frozenset({"projectid", "autoStart", "jwtAuthToken"})
FORBIDDEN_AUTHORIZE_PARAMS = frozenset(
    {
        "state",
        "nonce",
        "code_challenge",
        "code_challenge_method",
        "redirect_uri",
        "client_id",
        "response_type",
        "scope",
        "response_mode",
        "request",
        "request_uri",
    }
)

#: The key a cross-field check names at the start of its message: `client_id`, `sites."https://a".x`.
SUB_KEY = re.compile(r'(?:[a-z_.]+|"[^"]*")+')
#: A DNS name as browsers send it in Origin (internationalised names in their xn-- form).
HOST_NAME = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*")

ClaimSpec = str | list[str]
#: Rounds of "drop the faulty values, validate again" before the list of problems is final.
_MAX_ROUNDS = 5
V = TypeVar("V")


class SettingsError(Exception):
    """A settings file that cannot be used; ``problems`` holds one line per fault."""

    def __init__(self, problems: list[str], warnings: list[str] | None = None) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems
        #: Faults that do not stop start-up, reported along with the problems.
        self.warnings = warnings or []


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin_of(url: str) -> str:
    """``scheme://host[:port]`` spelled as a browser's ``Origin`` header spells it.

    Lower case, IPv6 hosts in brackets and no default port: ``https://Chat.acme.com:443``
    and ``https://chat.acme.com`` are one origin, and only the second reaches us in headers.
    """
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"has a port that is not a number from 1 to 65535: {url!r}") from None
    if ":" in host:
        host = f"[{host}]"
    scheme = parts.scheme.lower()
    if port is not None and port != _DEFAULT_PORTS.get(scheme):
        host = f"{host}:{port}"
    return f"{scheme}://{host}"


def _check_http_url(value: str, *, allow_path: bool = True) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"must be an http(s) URL, got {value!r}")
    if parts.query or parts.fragment:
        raise ValueError("must not carry a query or a fragment")
    if parts.username or parts.password:
        raise ValueError("must not carry credentials")
    if not allow_path and parts.path not in ("", "/"):
        raise ValueError("must be an origin (scheme://host[:port]) without a path")
    return value


def _refuse_bridge_keys(value: dict[str, V], keys: frozenset[str]) -> dict[str, V]:
    """Keys the bridge itself sets (widget settings, authorize parameters) stay its own."""
    taken = sorted(keys & value.keys())
    if taken:
        raise ValueError(f"{', '.join(taken)} is set by the bridge and cannot be overridden")
    return value


def is_loopback_url(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def canonical_origin(value: str) -> str | None:
    """``scheme://host[:port]`` as a browser writes it in ``Origin``, or None if it is not one."""
    if value != value.strip() or any(ord(c) < 0x21 or ord(c) == 0x7F for c in value):
        return None
    if "\\" in value or "@" in value:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    if parts.path or parts.query or parts.fragment or value.endswith(("?", "#")):
        return None
    if not HOST_NAME.fullmatch(parts.hostname):
        try:
            ipaddress.ip_address(parts.hostname)
        except ValueError:
            return None
    try:
        return _origin_of(value)
    except ValueError:
        return None


def is_same_site(origin: str, other: str) -> bool:
    """Same scheme and registrable domain, near enough: the same host, or one the parent of the
    other's (``www.acme.com`` and ``chat.acme.com`` share ``acme.com``). Without the Public Suffix
    List this over-reports for hosts under a public suffix such as ``github.io``; it only
    decides what ``check`` says, never what the bridge allows."""
    a, b = urlsplit(origin), urlsplit(other)
    if a.scheme != b.scheme or not a.hostname or not b.hostname:
        return False
    host_a, host_b = a.hostname, b.hostname
    if host_a == host_b:
        return True
    try:
        ipaddress.ip_address(host_a)
        ipaddress.ip_address(host_b)
        return False
    except ValueError:
        pass
    base_a, base_b = ".".join(host_a.split(".")[-2:]), ".".join(host_b.split(".")[-2:])
    return base_a == base_b and base_a.count(".") == 1


class SiteSettings(_Model):
    """A website that may embed the chat with ``/embed.js`` (keyed by its exact origin)."""

    #: The providers its visitors are offered; every configured one when unset.
    providers: tuple[str, ...] | None = None
    #: "required": no chat until signed in; "offered": anonymous chat until the visitor signs in.
    sign_in: Literal["required", "offered"] = "required"

    @field_validator("providers")
    @classmethod
    def _providers(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is not None and not value:
            raise ValueError("list at least one provider, or leave the key out to offer them all")
        return value


class ServerSettings(_Model):
    public_url: str
    #: Visitors really reach the bridge over plain http (a closed network without TLS).
    allow_plain_http: bool = False
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    #: Replaced by [sites]; kept only to point an old file at its new home.
    allowed_origins: tuple[str, ...] | None = None
    trusted_proxies: tuple[str, ...] = ()
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    #: Where calls to the IdPs and Tiledesk go through, for networks without direct egress.
    outbound_proxy: str | None = None

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str) -> str:
        _check_http_url(value)
        path = urlsplit(value).path
        if path not in ("", "/"):
            # The pages link from the site's root (/login, /auth, /static/...).
            raise ValueError(
                f"must be an origin without a path (found {path!r}): serve the bridge at its "
                'own host or sub-domain, e.g. public_url = "https://chat.acme.com"'
            )
        return _origin_of(value)

    @field_validator("outbound_proxy")
    @classmethod
    def _outbound_proxy(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if (
            parts.scheme not in ("http", "https")
            or not parts.hostname
            or parts.path not in ("", "/")
        ):
            raise ValueError(
                f"must be a proxy URL like 'http://proxy.acme.com:3128', got {value!r}"
            )
        return value

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, value: tuple[str, ...] | None) -> None:
        if value is None:
            return None
        example = next((o for o in value if canonical_origin(o)), "https://www.acme.com")
        raise ValueError(
            "replaced by [sites]: list each origin that embeds the chat as its own table, "
            f'e.g. [sites."{canonical_origin(example)}"]'
        )

    @model_validator(mode="after")
    def _plain_http(self) -> ServerSettings:
        """Plain http off loopback loses the cookie's ``Secure``: only on an explicit opt-out."""
        if self.is_https or self.allow_plain_http or is_loopback_url(self.public_url):
            return self
        https = "https://" + self.public_url.removeprefix("http://")
        raise ValueError(
            f"public_url: plain http off loopback sends the session cookie without Secure: "
            f'write the https URL visitors use, public_url = "{https}" (behind a '
            "TLS-terminating proxy too, with the proxy in trusted_proxies), or set "
            "allow_plain_http = true for a closed network without TLS"
        )

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for proxy in value:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                raise ValueError(f"{proxy!r} is not an IP address or network") from None
        return value

    @property
    def origin(self) -> str:
        return _origin_of(self.public_url)

    @property
    def is_https(self) -> bool:
        return self.public_url.startswith("https://")


def _session_secret(value: SecretStr) -> SecretStr:
    if len(value.get_secret_value()) < 32:
        raise ValueError("must be at least 32 characters (use a random value)")
    return value


class SessionSettings(_Model):
    #: Seals every new session cookie (an AES-256-GCM key is derived from it).
    secret: SecretStr
    #: Earlier secrets, only to open cookies sealed before a rotation (re-sealed on use).
    previous_secrets: tuple[Annotated[SecretStr, AfterValidator(_session_secret)], ...] = ()
    #: Seconds from sign-in to sign-out, however active the visitor.
    max_age: int = Field(default=8 * 3600, ge=60, le=30 * 24 * 3600)
    #: Seconds without a request after which the session ends; off by default.
    idle_timeout: int | None = Field(default=None, ge=300)
    cookie_name: str = Field(default="bridge_session", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    same_site: Literal["lax", "strict", "none"] = "lax"
    https_only: bool | None = None
    #: Where sessions live: in the sealed cookie, or in Redis behind an opaque ticket.
    store: Literal["cookie", "redis"] = "cookie"
    #: Shared by every instance: sessions (store = "redis"), spent states, logout records.
    redis_url: SecretStr | None = None
    redis_password: SecretStr | None = None
    #: Seconds for each Redis call (connect, command); past it the bridge answers 503.
    redis_timeout: float = Field(default=1.0, gt=0, le=10)

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: SecretStr) -> SecretStr:
        return _session_secret(value)

    @model_validator(mode="after")
    def _lifetimes(self) -> SessionSettings:
        if self.idle_timeout is not None and self.idle_timeout >= self.max_age:
            raise ValueError(
                f"idle_timeout: must be shorter than max_age ({self.max_age} s), "
                "or left out: max_age alone already ends the session"
            )
        current = self.secret.get_secret_value()
        if any(s.get_secret_value() == current for s in self.previous_secrets):
            raise ValueError("previous_secrets: must not repeat the current secret")
        return self

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return value
        url = value.get_secret_value()
        if url.startswith(f"{SENTINEL_SCHEME}://"):
            parse_sentinel_url(url)
            return value
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss") or not parts.hostname:
            # The value may hold a password: never echo it.
            raise ValueError(
                "must be a redis://host[:port][/db] or rediss://… URL "
                f"(or {SENTINEL_SCHEME}://… for Redis Sentinel)"
            )
        return value

    @model_validator(mode="after")
    def _redis(self) -> SessionSettings:
        if self.store == "redis" and self.redis_url is None:
            raise ValueError('redis_url: required with store = "redis"')
        if self.redis_password is not None and self.redis_url is None:
            raise ValueError("redis_password: set redis_url too")
        return self


SENTINEL_SCHEME = "redis+sentinel"
SENTINEL_PORT = 26379


@dataclass(frozen=True)
class SentinelTarget:
    """Where Redis Sentinel runs, and which primary (and database) it watches for us."""

    sentinels: tuple[tuple[str, int], ...]
    primary: str
    db: int


def parse_sentinel_url(url: str) -> SentinelTarget:
    """``redis+sentinel://host[:port][,host[:port]…]/<primary>[/<db>]``, or ValueError.

    Never echoes the URL: it is a secret setting like any Redis URL.
    """
    shape = (
        f"a Sentinel URL names the primary after the hosts: "
        f"{SENTINEL_SCHEME}://host[:port][,host[:port]…]/<primary>[/<db>]"
    )
    rest = url.removeprefix(f"{SENTINEL_SCHEME}://")
    netloc, _slash, path = rest.partition("/")
    if "@" in netloc:
        raise ValueError("put the password in redis_password, not in a Sentinel URL")
    sentinels = []
    for host in netloc.split(","):
        parts = urlsplit(f"//{host}")
        try:
            port = parts.port or SENTINEL_PORT
        except ValueError:
            raise ValueError(shape) from None
        if not parts.hostname:
            raise ValueError(shape)
        sentinels.append((parts.hostname, port))
    primary, _slash, db = path.partition("/")
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", primary) or not re.fullmatch(r"\d{0,2}", db):
        raise ValueError(shape)
    return SentinelTarget(tuple(sentinels), primary, int(db or 0))


class TiledeskSettings(_Model):
    project_id: str = Field(pattern=r"^[A-Za-z0-9]{1,32}$")
    secret: SecretStr
    token_ttl: int = Field(default=8 * 3600, ge=60, le=7 * 24 * 3600)
    api_url: str = "https://api.tiledesk.com/v3"
    widget_url: str = "https://widget.tiledesk.com/v5/launch.js"
    widget: dict[str, Any] = Field(default_factory=dict)

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("must not be empty")
        return value

    @field_validator("api_url", "widget_url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _check_http_url(value).rstrip("/")

    @field_validator("widget")
    @classmethod
    def _widget(cls, value: dict[str, Any]) -> dict[str, Any]:
        return _refuse_bridge_keys(value, RESERVED_WIDGET_KEYS)

    @property
    def audience(self) -> str:
        return f"https://tiledesk.com/projects/{self.project_id}"


class ClaimsSettings(_Model):
    """How each Tiledesk field is made from the verified claims."""

    firstname: ClaimSpec = Field(default_factory=lambda: ["given_name", "name"])
    lastname: ClaimSpec = "family_name"
    email: ClaimSpec = "email"
    attributes: dict[str, ClaimSpec] = Field(default_factory=dict)

    @field_validator("attributes")
    @classmethod
    def _attributes(cls, value: dict[str, ClaimSpec]) -> dict[str, ClaimSpec]:
        for key in value:
            if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", key):
                raise ValueError(f"attribute name {key!r} must match [A-Za-z0-9_-]{{1,64}}")
        return value


class AccessSettings(_Model):
    email_domains: tuple[str, ...] = ()
    hosted_domain: str | None = None
    groups_claim: str = "groups"
    allowed_groups: tuple[str, ...] = ()
    require_email_verified: bool | None = None
    email_verified_claim: str = "email_verified"

    @field_validator("email_domains")
    @classmethod
    def _domains(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for domain in value:
            if not re.fullmatch(r"\.?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9-]+)+", domain):
                raise ValueError(f"{domain!r} is not a lower-case domain name like 'acme.com'")
        return value


class ProviderSettings(_Model):
    preset: Literal["keycloak", "google", "entra", "okta", "auth0", "generic", "dev"]
    display_name: str | None = None
    issuer: str | None = None
    base_url: str | None = None
    realm: str | None = None
    tenant: str | None = None
    domain: str | None = None
    authorization_server: str | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None
    scopes: tuple[str, ...] = ("openid", "email", "profile")
    leeway: int = Field(default=60, ge=0, le=300)
    timeout: float = Field(default=10.0, gt=0, le=60)
    subject_claim: str = "sub"
    #: Call the userinfo endpoint: always, never, or only when the ID token lacks a claim
    #: the mapping or the access rules read ("auto").
    userinfo: StrictBool | Literal["auto"] = "auto"
    authorize_params: dict[str, str] = Field(default_factory=dict)
    claims: ClaimsSettings = Field(default_factory=ClaimsSettings)
    access: AccessSettings = Field(default_factory=AccessSettings)

    @field_validator("scopes")
    @classmethod
    def _scopes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if "openid" not in value:
            raise ValueError("must include 'openid'")
        return value

    @field_validator("userinfo", mode="before")
    @classmethod
    def _userinfo(cls, value: Any) -> Any:
        """One line for a bad value, rather than one per member of the union."""
        if value is True or value is False or value == "auto":
            return value
        raise ValueError('must be true, false or "auto"')

    @field_validator("authorize_params")
    @classmethod
    def _authorize_params(cls, value: dict[str, str]) -> dict[str, str]:
        return _refuse_bridge_keys(value, FORBIDDEN_AUTHORIZE_PARAMS)

    @model_validator(mode="after")
    def _preset(self) -> ProviderSettings:
        """Every parameter the preset needs, all reported at once (one line each)."""
        if self.preset == "dev":
            return self
        problems = []
        if not self.client_id:
            problems.append("client_id: required")
        if self.client_secret is None or not self.client_secret.get_secret_value():
            problems.append('client_secret: required (use "env:NAME" or "file:/path")')
        try:
            # Resolving here reports a missing preset parameter at load time.
            providers.resolve_issuer(self.preset, self._issuer_params())
        except ValueError as exc:
            problems.append(str(exc))
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def _issuer_params(self) -> providers.IssuerParams:
        return providers.IssuerParams(
            issuer=self.issuer,
            base_url=self.base_url,
            realm=self.realm,
            tenant=self.tenant,
            domain=self.domain,
            authorization_server=self.authorization_server,
        )


COLOUR = re.compile(r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")
LANGUAGE = re.compile(r"^[a-z]{2,3}$")
LOGO_SUFFIXES = {".png", ".svg", ".jpg", ".jpeg", ".webp", ".gif"}


def _relative_path(value: str, info: ValidationInfo) -> Path:
    """A path in the settings file is relative to that file."""
    path = Path(value).expanduser()
    base = (info.context or {}).get("base_dir")
    return path if path.is_absolute() or base is None else Path(base) / path


class PagesSettings(_Model):
    """[pages]: the operator's templates, the visitors' languages, and the branding."""

    templates_dir: Path | None = None
    languages: tuple[str, ...] = Field(default_factory=pages.shipped_languages)
    default_language: str = "en"
    title: str | None = Field(default=None, min_length=1, max_length=80)
    logo: str | None = None
    accent: str | None = None
    footer: str | None = Field(default=None, min_length=1, max_length=300)
    support_url: str | None = None

    @field_validator("templates_dir", mode="before")
    @classmethod
    def _templates_dir(cls, value: Any, info: ValidationInfo) -> Path:
        if not isinstance(value, str) or not value:
            raise ValueError("must be a directory path")
        path = _relative_path(value, info)
        if not path.is_dir():
            raise ValueError(f"{path} is not a directory")
        problems = pages.template_problems(path)
        if problems:
            raise ValueError(f"a template does not parse: {problems[0]}")
        return path

    @field_validator("languages")
    @classmethod
    def _languages(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        shipped = pages.shipped_languages()
        if not value:
            raise ValueError(f"list at least one language ({', '.join(shipped)})")
        for language in value:
            if language not in shipped:
                raise ValueError(
                    f"no catalogue for {language!r}; the bridge speaks {', '.join(shipped)}"
                )
        return tuple(dict.fromkeys(value))

    @field_validator("logo", mode="before")
    @classmethod
    def _logo(cls, value: Any, info: ValidationInfo) -> str:
        if not isinstance(value, str) or not value:
            raise ValueError("must be an https URL or the path of an image file")
        if urlsplit(value).scheme in ("http", "https"):
            return _check_http_url(value)
        path = _relative_path(value, info)
        if path.suffix.lower() not in LOGO_SUFFIXES:
            raise ValueError(f"must be an image ({', '.join(sorted(LOGO_SUFFIXES))}): {path}")
        if not path.is_file():
            raise ValueError(f"{path} is not a file")
        return str(path)

    @field_validator("accent")
    @classmethod
    def _accent(cls, value: str | None) -> str | None:
        if value is not None and not COLOUR.fullmatch(value):
            raise ValueError(f"must be a colour like '#1f5fd1' (#rgb or #rrggbb), got {value!r}")
        return value

    @field_validator("support_url")
    @classmethod
    def _support_url(cls, value: str | None) -> str | None:
        if value is None or (value.startswith("mailto:") and "@" in value):
            return value
        return _check_http_url(value)

    @model_validator(mode="after")
    def _default_language(self) -> PagesSettings:
        if self.default_language not in self.languages:
            raise ValueError(
                f"default_language: {self.default_language!r} is not in languages "
                f"({', '.join(self.languages)})"
            )
        return self

    @property
    def logo_file(self) -> Path | None:
        if self.logo is None or urlsplit(self.logo).scheme in ("http", "https"):
            return None
        return Path(self.logo)


class Settings(_Model):
    server: ServerSettings
    session: SessionSettings
    tiledesk: TiledeskSettings
    providers: dict[str, ProviderSettings]
    sites: dict[str, SiteSettings] = Field(default_factory=dict)
    pages: PagesSettings = Field(default_factory=PagesSettings)
    _warnings: tuple[str, ...] = PrivateAttr(default=())

    # The cross-table checks are field validators reading the already validated
    # [server] table, so a fault in an unrelated table does not hide them.

    @field_validator("session")
    @classmethod
    def _session(cls, value: SessionSettings, info: ValidationInfo) -> SessionSettings:
        server = info.data.get("server")
        if server is not None and value.same_site == "none" and not server.is_https:
            raise ValueError("same_site: 'none' needs an https public_url")
        if value.same_site == "none" and value.https_only is False:
            raise ValueError(
                "same_site: 'none' needs the cookie's Secure flag: leave https_only out "
                "(or true), browsers drop a SameSite=None cookie without it"
            )
        return value

    @field_validator("providers")
    @classmethod
    def _providers(
        cls, value: dict[str, ProviderSettings], info: ValidationInfo
    ) -> dict[str, ProviderSettings]:
        if not value:
            raise ValueError("configure at least one [providers.NAME] table")
        for name in value:
            if not PROVIDER_NAME.fullmatch(name):
                raise ValueError(f"provider name {name!r} must match [a-z0-9-]{{1,32}}")
        server = info.data.get("server")
        has_dev = any(p.preset == "dev" for p in value.values())
        if server is not None and has_dev and not is_loopback_url(server.public_url):
            raise ValueError(
                "the dev preset signs in anyone and is refused unless "
                "server.public_url is a loopback address (127.0.0.1, localhost)"
            )
        return value

    @field_validator("sites")
    @classmethod
    def _sites(
        cls, value: dict[str, SiteSettings], info: ValidationInfo
    ) -> dict[str, SiteSettings]:
        """One spelling per origin, the one browsers send, so that matching can be exact."""
        server = info.data.get("server")
        known = info.data.get("providers")
        sites: dict[str, SiteSettings] = {}
        for key, site in value.items():
            origin = canonical_origin(key)
            if origin is None:
                raise ValueError(
                    f"{key!r} is not an origin: write scheme://host[:port], "
                    'e.g. [sites."https://www.acme.com"]'
                )
            if origin in sites:
                raise ValueError(f"{key!r} is {origin!r} again")
            plain_http_ok = server is not None and server.allow_plain_http
            if origin.startswith("http://") and not (is_loopback_url(origin) or plain_http_ok):
                raise ValueError(
                    f"{key!r}: a site must be https (plain http only on loopback, or with "
                    "server.allow_plain_http)"
                )
            if server is not None and origin == server.origin:
                raise ValueError(f'"{origin}": is the bridge itself (server.public_url)')
            unknown = sorted(set(site.providers or ()) - set(known or {}))
            if known is not None and unknown:
                raise ValueError(f'"{origin}".providers: no provider named {", ".join(unknown)}')
            sites[origin] = site
        return sites

    @property
    def warnings(self) -> tuple[str, ...]:
        """Faults that do not stop start-up (a secret written in the file), one line each."""
        return self._warnings

    @property
    def has_dev_provider(self) -> bool:
        return any(p.preset == "dev" for p in self.providers.values())

    @property
    def https_only(self) -> bool:
        if self.session.https_only is not None:
            return self.session.https_only
        return self.server.is_https

    def site(self, origin: str | None) -> SiteSettings | None:
        """The [sites] entry for exactly this origin (as a browser sends it), if any."""
        return self.sites.get(origin) if origin else None

    def site_providers(self, origin: str) -> tuple[str, ...]:
        site = self.sites[origin]
        return site.providers if site.providers is not None else tuple(self.providers)

    def issuer(self, name: str) -> str:
        provider = self.providers[name]
        if provider.preset == "dev":
            return f"{self.server.public_url}/dev-idp"
        return providers.resolve_issuer(provider.preset, provider._issuer_params())

    def redirect_uri(self, name: str) -> str:
        return f"{self.server.public_url}/callback/{name}"

    def backchannel_logout_uri(self, name: str) -> str:
        return f"{self.server.public_url}/backchannel-logout/{name}"

    def url(self, path: str) -> str:
        """The one place that turns a path on this site into an absolute URL."""
        return f"{self.server.public_url}{path}"


# --- loading -----------------------------------------------------------------


def _resolve_secrets(value: Any, base_dir: Path, path: str, problems: list[str]) -> Any:
    """Replace every ``env:NAME`` / ``file:/path`` string with what it points at."""
    if isinstance(value, dict):
        return {
            k: _resolve_secrets(
                v, base_dir, f"{path}.{toml_key(k)}" if path else toml_key(k), problems
            )
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [
            _resolve_secrets(v, base_dir, f"{path}[{i}]", problems) for i, v in enumerate(value)
        ]
    if not isinstance(value, str):
        return value
    if value.startswith("env:"):
        name = value[4:]
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            problems.append(f"{path}: {value!r} is not a valid environment variable reference")
            return None
        if name not in os.environ:
            problems.append(f"{path}: environment variable {name} is not set")
            return None
        return os.environ[name]
    if value.startswith("file:"):
        try:
            file = Path(value[5:]).expanduser()
        except RuntimeError:  # "~someone/..." naming no user of this machine
            problems.append(f"{path}: cannot read {value[5:]}: no such user's home directory")
            return None
        if not file.is_absolute():
            file = base_dir / file
        try:
            return file.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            problems.append(f"{path}: cannot read {file}: {exc.strerror or exc}")
        except UnicodeDecodeError:
            problems.append(
                f"{path}: cannot read {file}: not UTF-8 text (write the secret as text, "
                "e.g. the output of `openssl rand -base64 48`)"
            )
        except ValueError:  # open() refuses a NUL in the path
            problems.append(
                f"{path}: cannot read {str(file)!r}: a path cannot hold a NUL character"
            )
        return None
    return value


def _location(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts[-1:] = [f"{parts[-1] if parts else ''}[{item}]"]
        elif item.startswith(("function-", "tagged-union", "union[", "str", "list[")):
            continue
        else:
            parts.append(toml_key(item))
    return ".".join(parts)


#: A key TOML writes as it is; any other is quoted, in errors as in the file (``"a b"``).
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def toml_key(key: str) -> str:
    """A key as TOML writes it in a dotted path: bare, or quoted (``sites."https://a.b"``)."""
    return key if _BARE_KEY.fullmatch(key) else json.dumps(key)


def _model_at(keys: tuple[str, ...]) -> type[BaseModel] | None:
    """The model of the table at these keys (``providers.acme`` -> ProviderSettings), if any."""
    model: type[BaseModel] = Settings
    rest = list(keys)
    while rest:
        field = model.model_fields.get(rest.pop(0))
        if field is None:
            return None
        annotation = field.annotation
        if typing.get_origin(annotation) is dict:
            annotation = typing.get_args(annotation)[1]
            if not rest:
                return None
            rest.pop(0)  # the table's own name, e.g. the provider's
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model


def _closest_key(loc: tuple[str, ...]) -> str | None:
    """The known key of the table holding the typo that is closest to it (difflib)."""
    model = _model_at(loc[:-1])
    known = list(model.model_fields) if model is not None else []
    close = difflib.get_close_matches(loc[-1], known, n=1, cutoff=0.6)
    return close[0] if close else None


def _format_errors(exc: ValidationError) -> Iterator[tuple[str, str, str | None]]:
    """(key, message, suggested key) for each fault; a check may report several, one a line."""
    for err in exc.errors(include_url=False, include_input=False):
        loc = tuple(err["loc"])
        key = _location(loc)
        message = err["msg"].removeprefix("Value error, ")
        suggested = None
        if err["type"] == "extra_forbidden":
            closest = _closest_key(tuple(str(item) for item in loc))
            message = "unknown key (check the spelling)"
            if closest is not None:
                message = f"unknown key; did you mean {closest}?"
                parent = key.rpartition(".")[0]
                suggested = f"{parent}.{closest}" if parent else closest
        elif err["type"] == "missing":
            message = "required"
        for line in message.split("\n"):
            sub_key = key
            # A cross-field check names its own sub-key: "client_id: required".
            if ": " in line and SUB_KEY.fullmatch(line.split(": ", 1)[0]):
                sub, line = line.split(": ", 1)
                if not sub_key.endswith(sub):
                    sub_key = f"{sub_key}.{sub}" if sub_key else sub
            yield sub_key or "(top level)", line, suggested


def _prune(data: dict[str, Any], loc: tuple[int | str, ...]) -> bool:
    """Drop the value a field error points at, so the next round checks what is left.

    A table's own checks (a provider's preset parameters) name the table itself; those
    stay, as dropping the table would only hide its other faults.
    """
    node: Any = data
    parent: dict[str, Any] | None = None
    path: list[str] = []
    for item in loc:
        if not (isinstance(item, str) and isinstance(node, dict) and item in node):
            break
        path.append(item)
        parent, node = node, node[item]
    if parent is None or _model_at(tuple(path)) is not None:
        return False
    del parent[path[-1]]
    return True


def parse_settings(data: Mapping[str, Any], base_dir: Path | None = None) -> Settings:
    """Validate already-parsed TOML data; raises SettingsError with one line per problem.

    Pydantic runs a table's own checks only when every field of it is valid, so one typo
    would hide the rest. Each round drops the faulty values and validates again, until
    nothing new appears: every problem is reported in one run.
    """
    problems: list[str] = []
    base = base_dir or Path.cwd()
    resolved = _resolve_secrets(dict(data), base, "", problems)
    reported = {line.split(": ", 1)[0] for line in problems}
    suggested: set[str] = set()
    settings: Settings | None = None
    for _ in range(_MAX_ROUNDS):
        try:
            settings = Settings.model_validate(resolved, context={"base_dir": base})
            break
        except ValidationError as exc:
            for key, message, suggestion in _format_errors(exc):
                if key in reported or (key in suggested and message.startswith("required")):
                    continue  # already said, or the consequence of a spelling fault
                reported.add(key)
                problems.append(f"{key}: {message}")
                if suggestion is not None:
                    suggested.add(suggestion)
            resolved = copy.deepcopy(resolved)
            pruned = [_prune(resolved, tuple(err["loc"])) for err in exc.errors()]
            if not any(pruned):
                break
    if problems or settings is None:
        raise SettingsError([_one_line(p) for p in problems], literal_secrets(data))
    settings._warnings = tuple(literal_secrets(data))
    return settings


def _one_line(problem: str) -> str:
    """A TOML key or path may hold a newline or another control character: shown escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in problem)


def _secret_fields(model: type[BaseModel], prefix: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
    """Paths of the fields typed SecretStr (or lists of them), ``*`` standing for a table name."""
    for name, field in model.model_fields.items():
        path = (*prefix, name)
        annotation = field.annotation
        args = typing.get_args(annotation)
        if typing.get_origin(annotation) is dict and _is_model(args[1]):
            yield from _secret_fields(args[1], (*path, "*"))
        elif _is_model(annotation):
            yield from _secret_fields(annotation, path)
        elif SecretStr in _leaf_types(annotation):
            yield path


def _is_model(annotation: Any) -> typing.TypeGuard[type[BaseModel]]:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _leaf_types(annotation: Any) -> set[Any]:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, list, tuple, set, frozenset):
        return {t for arg in typing.get_args(annotation) for t in _leaf_types(arg)}
    return {annotation}


def _values_at(data: Any, path: tuple[str, ...], seen: str) -> Iterator[tuple[str, Any]]:
    if not path:
        yield seen, data
        return
    if not isinstance(data, dict):
        return
    head, rest = path[0], path[1:]
    keys = list(data) if head == "*" else [head] if head in data else []
    for key in keys:
        yield from _values_at(data[key], rest, f"{seen}.{key}" if seen else key)


def literal_secrets(data: Mapping[str, Any]) -> list[str]:
    """A warning for each secret written in the file itself rather than ``env:``/``file:``."""
    warnings = []
    for path in _secret_fields(Settings, ()):
        for key, value in _values_at(data, path, ""):
            values = value if isinstance(value, list) else [value]
            if any(_is_literal_secret(v) for v in values):
                warnings.append(
                    f"warning: {_one_line(key)}: a secret written in the settings file itself; "
                    'write "env:NAME" to read it from the environment or "file:/path" from a file'
                )
    return warnings


def _is_literal_secret(value: Any) -> bool:
    """A secret written out; a URL without a password (``redis_url``) holds none."""
    if not isinstance(value, str) or not value or value.startswith(("env:", "file:")):
        return False
    return "://" not in value or urlsplit(value).password is not None


def default_settings_path() -> Path:
    return Path(os.environ.get("BRIDGE_SETTINGS", "settings.toml"))


def load_settings(path: Path | str | None = None) -> Settings:
    """Read and validate the settings file; raises SettingsError on any problem."""
    file = Path(path) if path is not None else default_settings_path()
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise SettingsError(
            [f"{file}: cannot read the settings file: {exc.strerror or exc}"]
        ) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SettingsError([f"{file}: not valid TOML: {exc}"]) from None
    return parse_settings(data, file.resolve().parent)
