"""The development OpenID Provider behind ``preset = "dev"``.

It lets a newcomer run the whole sign-in flow on a laptop without any IdP
account: a form asks for a name and an email and signs in whoever is typed.
It is built on Authlib's server side (authorization-code grant, PKCE, OpenID
Connect code flow, RFC 9207 ``iss``, RP-initiated logout) so that the relying
party is exercised against real protocol behaviour, not a stub. Everything is
kept in memory and lost on restart; it must never face the internet.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import re
import secrets
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlencode, urlsplit

import jinja2
from authlib.oauth2.rfc6749 import (
    AuthorizationServer,
    InvalidRequestError,
    OAuth2Error,
    OAuth2Payload,
    OAuth2Request,
    ResourceProtector,
)
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant
from authlib.oauth2.rfc6750 import BearerTokenGenerator, BearerTokenValidator
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc9207 import IssuerParameter
from authlib.oidc.core import UserInfo
from authlib.oidc.core.grants import OpenIDCode
from authlib.oidc.rpinitiated import EndSessionEndpoint, EndSessionRequest
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

__all__ = ["create_dev_idp"]

log = logging.getLogger(__name__)

CODE_TTL = 60
ACCESS_TOKEN_TTL = 300
ID_TOKEN_TTL = 300
SIGNING_ALG = "RS256"
SCOPES_SUPPORTED = ("openid", "email", "profile", "groups")
CLAIMS_SUPPORTED = (
    "sub",
    "iss",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "at_hash",
    "name",
    "given_name",
    "family_name",
    "email",
    "email_verified",
    "groups",
)
TOKEN_AUTH_METHODS = ("client_secret_basic", "client_secret_post")

# Authlib logs issued tokens and client ids at DEBUG from these loggers
# ("Issue token %r to %r"); a logger filter only covers its own logger.
_AUTHLIB_CHATTY_LOGGERS = (
    "authlib.oauth2.rfc6749.grants.authorization_code",
    "authlib.oauth2.rfc6749.authenticate_client",
    "authlib.oidc.core.grants.code",
)

_MAX_NAME = 200
_MAX_EMAIL = 254
_MAX_GROUP = 100
_MAX_GROUPS = 50
_EMAIL = re.compile(r"^[^@\s<>\"]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class _DropDebug(logging.Filter):
    """Drops DEBUG records: at that level Authlib prints tokens and codes."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.DEBUG


_DROP_DEBUG = _DropDebug()


def _now() -> int:
    return int(time.time())


# -- the resource owner, the client and what the server remembers ----------


@dataclass(frozen=True)
class _DevUser:
    """Whoever filled in the form; ``sub`` follows the email so it is stable."""

    name: str
    email: str
    groups: tuple[str, ...]

    @property
    def sub(self) -> str:
        digest = hashlib.sha256(self.email.lower().encode("utf-8")).hexdigest()
        return "dev-" + digest[:24]


@dataclass(frozen=True)
class _Client:
    """The single confidential client (the bridge), duck-typing ClientMixin."""

    client_id: str
    client_secret: str
    redirect_uris: tuple[str, ...]
    post_logout_redirect_uris: tuple[str, ...]

    @property
    def client_metadata(self) -> dict[str, Any]:
        return {"post_logout_redirect_uris": list(self.post_logout_redirect_uris)}

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> None:
        """OpenID Connect makes ``redirect_uri`` mandatory: there is no default."""
        return None

    def get_allowed_scope(self, scope: str | None) -> str | None:
        """Keeps the known scopes (OIDC says ignore the others); None without openid."""
        requested = (scope or "").split()
        if "openid" not in requested:
            return None
        return " ".join(s for s in dict.fromkeys(requested) if s in SCOPES_SUPPORTED)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return hmac.compare_digest(
            client_secret.encode("utf-8"), self.client_secret.encode("utf-8")
        )

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in TOKEN_AUTH_METHODS

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "authorization_code"


@dataclass(frozen=True)
class _AuthorizationCode:
    """An issued code, duck-typing Authlib's OIDC AuthorizationCodeMixin."""

    code: str
    client_id: str
    redirect_uri: str
    scope: str
    user: _DevUser
    nonce: str | None
    code_challenge: str
    code_challenge_method: str
    auth_time: int
    expires_at: int

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time

    def get_acr(self) -> None:
        return None

    def get_amr(self) -> None:
        return None


@dataclass
class _AccessToken:
    """An issued bearer token, with just what BearerTokenValidator asks of it."""

    user: _DevUser
    scope: str
    expires_at: int
    code: str
    revoked: bool = False

    def get_scope(self) -> str:
        return self.scope

    def is_expired(self) -> bool:
        return _now() >= self.expires_at

    def is_revoked(self) -> bool:
        return self.revoked


@dataclass
class _Store:
    """In-memory state; expired entries are purged whenever something is added."""

    codes: dict[str, _AuthorizationCode] = field(default_factory=dict)
    tokens: dict[str, _AccessToken] = field(default_factory=dict)
    spent_codes: dict[str, int] = field(default_factory=dict)

    def add_code(self, item: _AuthorizationCode) -> None:
        self._purge()
        self.codes[item.code] = item

    def take_code(self, code: str, client_id: str) -> _AuthorizationCode | None:
        """Single use: the code is gone after the first attempt, good or bad.

        A replayed code revokes the tokens it produced (RFC 6749 section 4.1.2).
        """
        item = self.codes.pop(code, None)
        if item is None:
            if code in self.spent_codes:
                for token in self.tokens.values():
                    if token.code == code:
                        token.revoked = True
            return None
        self.spent_codes[code] = _now() + ACCESS_TOKEN_TTL
        if item.client_id != client_id or _now() >= item.expires_at:
            return None
        return item

    def nonce_in_use(self, client_id: str, nonce: str) -> bool:
        return any(c.client_id == client_id and c.nonce == nonce for c in self.codes.values())

    def add_token(self, access_token: str, item: _AccessToken) -> None:
        self._purge()
        self.tokens[access_token] = item

    def _purge(self) -> None:
        now = _now()
        self.codes = {k: v for k, v in self.codes.items() if v.expires_at > now}
        self.tokens = {k: v for k, v in self.tokens.items() if v.expires_at > now}
        self.spent_codes = {k: v for k, v in self.spent_codes.items() if v > now}


# -- Authlib's server, adapted to Starlette ---------------------------------


class _Payload(OAuth2Payload):  # type: ignore[misc]
    """Request parameters already read from the Starlette request.

    ``data`` keeps the first value so that Authlib's duplicate checks, which
    read ``datalist``, still see every value.
    """

    def __init__(self, items: Iterable[tuple[str, str]]) -> None:
        self._data: dict[str, str] = {}
        self._datalist: defaultdict[str, list[str]] = defaultdict(list)
        for key, value in items:
            self._data.setdefault(key, value)
            self._datalist[key].append(value)

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        return self._datalist


class _OAuth2Request(OAuth2Request):  # type: ignore[misc]
    """Authlib's request built from a Starlette request whose body was awaited."""

    def __init__(
        self, method: str, uri: str, headers: Mapping[str, str], items: Iterable[tuple[str, str]]
    ) -> None:
        super().__init__(method, uri, headers=headers)
        self.payload = _Payload(items)

    @property
    def form(self) -> dict[str, str]:
        return self.payload.data


class _AuthlibResponse(Response):
    """A Starlette response with the ``location`` attribute Authlib's hooks edit."""

    @property
    def location(self) -> str | None:
        return self.headers.get("location")

    @location.setter
    def location(self, value: str) -> None:
        self.headers["location"] = value


class _Server(AuthorizationServer):  # type: ignore[misc]
    """Authlib's authorization server, wired to the in-memory store."""

    def __init__(self, issuer: str, client: _Client, store: _Store) -> None:
        super().__init__()
        self.issuer = issuer
        self.client = client
        self.store = store
        self.register_token_generator(
            "default",
            BearerTokenGenerator(
                access_token_generator=lambda **_: secrets.token_urlsafe(32),
                expires_generator=ACCESS_TOKEN_TTL,
            ),
        )

    def query_client(self, client_id: str | None) -> _Client | None:
        return self.client if client_id == self.client.client_id else None

    def save_token(self, token: dict[str, Any], request: _OAuth2Request) -> None:
        self.store.add_token(
            token["access_token"],
            _AccessToken(
                user=request.user,
                scope=token["scope"],
                expires_at=_now() + int(token["expires_in"]),
                code=request.authorization_code.code,
            ),
        )

    def create_oauth2_request(self, request: _OAuth2Request) -> _OAuth2Request:
        """Handlers read the body first (Authlib is sync) and pass the result here."""
        return request

    def handle_response(
        self, status: int, body: Any, headers: Sequence[tuple[str, str]]
    ) -> _AuthlibResponse:
        content = json.dumps(body) if isinstance(body, dict) else body
        return _AuthlibResponse(content, status_code=status, headers=dict(headers))

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        """Authlib announces events (client authenticated...); nobody listens here."""

    def authorization_error(self, request: _OAuth2Request, error: Any) -> _AuthlibResponse:
        """Redirects an error to the client, with ``iss`` as RFC 9207 asks for errors too."""
        response: _AuthlibResponse = self.handle_error_response(request, error)
        self.execute_hook("after_create_authorization_response", response)
        return response


class _CodeGrant(AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = list(TOKEN_AUTH_METHODS)

    def save_authorization_code(self, code: str, request: _OAuth2Request) -> None:
        data = request.payload.data
        self.server.store.add_code(
            _AuthorizationCode(
                code=code,
                client_id=request.client.client_id,
                redirect_uri=request.payload.redirect_uri,
                scope=request.scope,
                user=request.user,
                nonce=data.get("nonce") or None,
                code_challenge=data["code_challenge"],
                code_challenge_method=data["code_challenge_method"],
                auth_time=_now(),
                expires_at=_now() + CODE_TTL,
            )
        )

    def query_authorization_code(self, code: str, client: _Client) -> _AuthorizationCode | None:
        return self.server.store.take_code(code, client.client_id)  # type: ignore[no-any-return]

    def delete_authorization_code(self, authorization_code: _AuthorizationCode) -> None:
        """Nothing left to delete: ``query_authorization_code`` consumed it."""

    def authenticate_user(self, authorization_code: _AuthorizationCode) -> _DevUser:
        return authorization_code.user


class _S256Challenge(CodeChallenge):  # type: ignore[misc]
    """PKCE with S256 on every request; Authlib alone lets a missing challenge pass."""

    def validate_code_challenge(self, grant: _CodeGrant, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("Missing 'code_challenge'")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("'code_challenge_method' must be S256")
        super().validate_code_challenge(grant, redirect_uri)


class _OpenIDCode(OpenIDCode):  # type: ignore[misc]
    """Signs the ID token with the key generated at start-up."""

    def __init__(self, issuer: str, key: RSAKey, store: _Store) -> None:
        super().__init__(require_nonce=False)
        self.issuer = issuer
        self.key = key
        self.store = store

    def exists_nonce(self, nonce: str, request: _OAuth2Request) -> bool:
        return self.store.nonce_in_use(request.payload.client_id, nonce)

    def resolve_client_private_key(self, client: _Client) -> RSAKey:
        return self.key

    def get_client_algorithm(self, client: _Client) -> str:
        return SIGNING_ALG

    def get_encode_header(self, client: _Client) -> dict[str, str]:
        return {"alg": SIGNING_ALG, "kid": self.key.kid or ""}

    def get_client_claims(self, client: _Client) -> dict[str, Any]:
        now = _now()
        return {"iss": self.issuer, "aud": client.client_id, "iat": now, "exp": now + ID_TOKEN_TTL}

    def generate_user_info(self, user: _DevUser, scope: str) -> UserInfo:
        return _user_claims(user, scope)


class _IssuerParameter(IssuerParameter):  # type: ignore[misc]
    def __init__(self, issuer: str) -> None:
        self.issuer = issuer

    def get_issuer(self) -> str:
        return self.issuer


class _TokenValidator(BearerTokenValidator):  # type: ignore[misc]
    def __init__(self, store: _Store) -> None:
        super().__init__()
        self.store = store

    def authenticate_token(self, token_string: str) -> _AccessToken | None:
        return self.store.tokens.get(token_string)


class _EndSession(EndSessionEndpoint):  # type: ignore[misc]
    """RP-initiated logout: the dev IdP keeps no login session, so only redirects."""

    def __init__(self, public_keys: KeySet) -> None:
        super().__init__()
        self.public_keys = public_keys

    def get_server_jwks(self) -> KeySet:
        return self.public_keys

    def get_algorithms(self) -> list[str]:
        return [SIGNING_ALG]

    def end_session(self, end_session_request: EndSessionRequest) -> None:
        """Every /authorize shows the form again: there is nothing to end."""

    def is_post_logout_redirect_uri_legitimate(
        self, request: _OAuth2Request, post_logout_redirect_uri: str, client: _Client, hint: Any
    ) -> bool:
        """An exact match with a registered URI (checked by Authlib) is enough here."""
        return True


def _user_claims(user: _DevUser, scope: str) -> UserInfo:
    """The ID-token and userinfo claims: email and profile per scope, as IdPs do.

    ``groups`` comes whenever some were typed, like a Keycloak group mapper on
    the client, so the default ``openid email profile`` request still gets them.
    """
    scopes = set(scope.split())
    claims = UserInfo(sub=user.sub)
    if "email" in scopes:
        claims["email"] = user.email
        claims["email_verified"] = True
    if "profile" in scopes:
        claims["name"] = user.name
        given, _, family = user.name.rpartition(" ")
        claims["given_name"] = given or family
        if given:
            claims["family_name"] = family
    if user.groups:
        claims["groups"] = list(user.groups)
    return claims


def _parse_user(name: str, email: str, groups: str) -> _DevUser:
    """Checks the sign-in form; raises ValueError with a message for the visitor."""
    name, email = " ".join(name.split()), email.strip()
    if not name or len(name) > _MAX_NAME or _CONTROL.search(name):
        raise ValueError(f"Enter a name of 1 to {_MAX_NAME} characters.")
    if len(email) > _MAX_EMAIL or not _EMAIL.match(email):
        raise ValueError("Enter a valid email address, such as ada@example.com.")
    group_list = list(dict.fromkeys(g.strip() for g in groups.split(",") if g.strip()))
    if len(group_list) > _MAX_GROUPS or any(
        len(g) > _MAX_GROUP or _CONTROL.search(g) for g in group_list
    ):
        raise ValueError(f"Enter at most {_MAX_GROUPS} groups of up to {_MAX_GROUP} characters.")
    return _DevUser(name=name, email=email, groups=tuple(group_list))


def _check_issuer(issuer: str) -> None:
    """The dev IdP signs in anyone, so it only ever answers on a loopback address."""
    parts = urlsplit(issuer)
    host = parts.hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if parts.scheme not in ("http", "https") or not loopback:
        raise ValueError(f"dev IdP issuer must be an http(s) loopback URL, got {issuer!r}")
    if issuer.endswith("/") or parts.query or parts.fragment:
        raise ValueError(f"dev IdP issuer must not end with '/' or carry a query: {issuer!r}")


# -- HTTP -------------------------------------------------------------------


class _DevIdP:
    """The routes: each reads the request, then hands Authlib a ready request."""

    def __init__(
        self,
        *,
        issuer: str,
        client: _Client,
        templates_dir: Path,
    ) -> None:
        self.issuer = issuer
        self.store = _Store()
        self.key = RSAKey.generate_key(
            2048, parameters={"use": "sig", "alg": SIGNING_ALG}, private=True, auto_kid=True
        )
        self.public_jwk = self.key.as_dict(private=False)
        self.server = _Server(issuer, client, self.store)
        self.server.register_grant(
            _CodeGrant, [_S256Challenge(required=True), _OpenIDCode(issuer, self.key, self.store)]
        )
        self.server.register_extension(_IssuerParameter(issuer))
        self.server.register_endpoint(
            _EndSession(KeySet([RSAKey.import_key(dict(self.public_jwk))]))
        )
        self.protector = ResourceProtector()
        self.protector.register_token_validator(_TokenValidator(self.store))
        self.templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(templates_dir), autoescape=True
        )
        for name in ("devidp/login.html", "devidp/logged_out.html"):
            self.templates.get_template(name)
        form_targets = " ".join(
            sorted({f"{urlsplit(u).scheme}://{urlsplit(u).netloc}" for u in client.redirect_uris})
        )
        self.page_headers = {
            "Cache-Control": "no-store",
            "Referrer-Policy": "no-referrer",
            "Content-Security-Policy": (
                "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; "
                f"frame-ancestors 'none'; form-action 'self' {form_targets}"
            ),
        }

    def _request(
        self, request: Request, path: str, items: Iterable[tuple[str, str]]
    ) -> _OAuth2Request:
        """The URI comes from the issuer: the Host header is never trusted."""
        return _OAuth2Request(request.method, self.issuer + path, request.headers, items)

    def _page(self, template: str, status: int = 200, /, **context: Any) -> HTMLResponse:
        page = self.templates.get_template(f"devidp/{template}")
        html = page.render(issuer=self.issuer, **context)
        return HTMLResponse(html, status_code=status, headers=self.page_headers)

    async def discovery(self, request: Request) -> Response:
        issuer = self.issuer
        return JSONResponse(
            {
                "issuer": issuer,
                "authorization_endpoint": f"{issuer}/authorize",
                "token_endpoint": f"{issuer}/token",
                "jwks_uri": f"{issuer}/jwks",
                "userinfo_endpoint": f"{issuer}/userinfo",
                "end_session_endpoint": f"{issuer}/logout",
                "response_types_supported": ["code"],
                "response_modes_supported": ["query"],
                "grant_types_supported": ["authorization_code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": [SIGNING_ALG],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": list(TOKEN_AUTH_METHODS),
                "scopes_supported": list(SCOPES_SUPPORTED),
                "claims_supported": list(CLAIMS_SUPPORTED),
                "authorization_response_iss_parameter_supported": True,
            }
        )

    async def jwks(self, request: Request) -> Response:
        return JSONResponse({"keys": [self.public_jwk]})

    async def authorize(self, request: Request) -> Response:
        """GET shows the form; POST re-validates the carried request, then issues a code."""
        if request.method == "GET":
            items = request.query_params.multi_items()
            form: Mapping[str, str] = {}
        else:
            posted = await request.form()
            form = {k: v for k, v in posted.multi_items() if isinstance(v, str)}
            items = parse_qsl(form.get("authorization_request", ""), keep_blank_values=True)
        oauth_request = self._request(request, "/authorize", items)
        try:
            grant = self.server.get_consent_grant(oauth_request)
        except OAuth2Error as error:
            if error.redirect_uri:
                return self.server.authorization_error(oauth_request, error)
            return self._page("login.html", 400, error=error.get_error_description())

        values = {k: form.get(k, "") for k in ("name", "email", "groups")}
        context = {
            "authorization_request": urlencode(items),
            "client_id": grant.client.client_id,
            "redirect_uri": grant.redirect_uri,
            **values,
        }
        if request.method == "GET":
            return self._page("login.html", show_form=True, **context)
        try:
            user = _parse_user(**values)
        except ValueError as problem:
            return self._page("login.html", 400, show_form=True, error=str(problem), **context)
        response: Response = self.server.create_authorization_response(
            request=oauth_request, grant_user=user, grant=grant
        )
        return response

    async def token(self, request: Request) -> Response:
        posted = await request.form()
        items = [(k, v) for k, v in posted.multi_items() if isinstance(v, str)]
        response: Response = self.server.create_token_response(
            self._request(request, "/token", items)
        )
        return response

    async def userinfo(self, request: Request) -> Response:
        try:
            token: _AccessToken = self.protector.validate_request(
                ["openid"], self._request(request, "/userinfo", [])
            )
        except OAuth2Error as error:
            challenge = "Bearer"
            if request.headers.get("authorization"):
                challenge = 'Bearer error="invalid_token"'
            return JSONResponse(
                {"error": "invalid_token", "error_description": error.get_error_description()},
                status_code=401,
                headers={"WWW-Authenticate": challenge, "Cache-Control": "no-store"},
            )
        return JSONResponse(
            dict(_user_claims(token.user, token.scope)), headers={"Cache-Control": "no-store"}
        )

    async def logout(self, request: Request) -> Response:
        if request.method == "GET":
            items = request.query_params.multi_items()
        else:
            posted = await request.form()
            items = [(k, v) for k, v in posted.multi_items() if isinstance(v, str)]
        oauth_request = self._request(request, "/logout", items)
        try:
            end_session = self.server.validate_endpoint_request("end_session", oauth_request)
        except (OAuth2Error, JoseError, ValueError):
            return self._page(
                "logged_out.html", 400, error="The logout request is not valid for this provider."
            )
        response: Response | None = self.server.create_endpoint_response("end_session", end_session)
        return response or self._page("logged_out.html")


def create_dev_idp(
    *,
    issuer: str,
    client_id: str,
    client_secret: str,
    redirect_uris: list[str],
    post_logout_redirect_uris: list[str],
    templates_dir: str | Path,
) -> Starlette:
    """Build the development IdP as an app to mount at ``issuer``'s path.

    Raises ValueError unless ``issuer`` is a loopback URL: it signs in anyone.
    """
    _check_issuer(issuer)
    if not redirect_uris:
        raise ValueError("dev IdP needs at least one redirect URI")
    for name in _AUTHLIB_CHATTY_LOGGERS:
        logging.getLogger(name).addFilter(_DROP_DEBUG)
    client = _Client(
        client_id=client_id,
        client_secret=client_secret,
        redirect_uris=tuple(redirect_uris),
        post_logout_redirect_uris=tuple(post_logout_redirect_uris),
    )
    idp = _DevIdP(issuer=issuer, client=client, templates_dir=Path(templates_dir))
    log.warning(
        "development IdP enabled at %s: it signs in anyone; never use it in production", issuer
    )
    return Starlette(
        routes=[
            Route("/.well-known/openid-configuration", idp.discovery, methods=["GET"]),
            Route("/authorize", idp.authorize, methods=["GET", "POST"]),
            Route("/token", idp.token, methods=["POST"]),
            Route("/jwks", idp.jwks, methods=["GET"]),
            Route("/userinfo", idp.userinfo, methods=["GET", "POST"]),
            Route("/logout", idp.logout, methods=["GET", "POST"]),
        ]
    )
