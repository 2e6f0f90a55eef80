"""The relying party: authorize redirect, code exchange, strict ID-token checks, JWKS.

Authlib does the protocol work (PKCE, client authentication, claim
validation), joserfc the signatures.  This module closes the gaps Authlib's
defaults leave open: the discovered issuer is compared with the configured
one, ``aud`` is always checked, only the asymmetric algorithms the IdP
advertises are accepted, and discovery and keys expire and refresh (see
``bridge.remote``) instead of being cached forever.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import http.cookiejar
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlencode, urlsplit, urlunsplit

import httpx
from authlib.integrations.base_client import OAuthError
from authlib.integrations.httpx_client import AsyncOAuth2Client
from authlib.oidc.core import CodeIDToken
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet, OKPKey, RSAKey
from joserfc.jws import JWSRegistry

from bridge.errors import IdpError, IdpTimeout, IdpUnreachable, IdTokenInvalid
from bridge.identity import userinfo_needed
from bridge.metrics import Metrics
from bridge.providers import PRESETS, discovery_url
from bridge.remote import Reason, RemoteDocument
from bridge.settings import ProviderSettings, is_loopback_url

log = logging.getLogger("bridge.oidc")

ASYMMETRIC_ALGS = frozenset(
    {
        "RS256",
        "RS384",
        "RS512",
        "PS256",
        "PS384",
        "PS512",
        "ES256",
        "ES384",
        "ES512",
        "EdDSA",
        "Ed25519",
    }
)
#: Header parameters that name a key source other than the IdP's published JWKS.
FOREIGN_KEY_HEADERS = frozenset({"jku", "x5u", "jwk"})
KTY_FOR_ALG = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}
METADATA_TTL = 24 * 3600.0
JWKS_TTL = 3600.0
#: At most one JWKS refetch per this many seconds when no cached key verifies a token.
JWKS_REFETCH_INTERVAL = 15.0
#: After a failed discovery or JWKS fetch, nothing asks the IdP again for this long.
RETRY_AFTER_FAILURE = 5.0
MAX_KEYS = 50
MAX_DOCUMENT_BYTES = 512 * 1024

T = TypeVar("T")


@dataclass(frozen=True)
class Metadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str | None
    end_session_endpoint: str | None
    algorithms: tuple[str, ...]
    token_auth_method: str
    iss_in_response: bool

    @functools.cached_property
    def token_url(self) -> httpx.URL:
        """The token endpoint, parsed once: httpx would parse the string on every sign-in."""
        return httpx.URL(self.token_endpoint)

    @classmethod
    def parse(cls, doc: Any, expected_issuer: str) -> Metadata:
        """The usable parts of a discovery document, or IdpError naming what is wrong."""
        if not isinstance(doc, dict):
            raise IdpError("the discovery document is not a JSON object")
        issuer = doc.get("issuer")
        if issuer != expected_issuer:
            raise IdpError(
                f"the discovery document's issuer {issuer!r} differs from the configured "
                f"issuer {expected_issuer!r}: fix the provider's issuer settings"
            )

        plain_allowed = urlsplit(expected_issuer).scheme == "http"

        def endpoint(key: str, required: bool = True) -> str | None:
            value = doc.get(key)
            if value is None and not required:
                return None
            if not isinstance(value, str) or urlsplit(value).scheme not in ("https", "http"):
                raise IdpError(f"the discovery document has no usable {key}")
            # An https issuer's endpoints carry codes, tokens and the visitor's
            # credentials: plain http only to this machine (tests, a local IdP).
            if urlsplit(value).scheme == "http" and not (plain_allowed or is_loopback_url(value)):
                raise IdpError(
                    f"the discovery document's {key} {loggable_url(value)} is plain http "
                    "on an https issuer"
                )
            return value

        advertised = doc.get("id_token_signing_alg_values_supported") or ["RS256"]
        if not isinstance(advertised, list):
            raise IdpError("id_token_signing_alg_values_supported is not a list")
        algorithms = tuple(a for a in advertised if a in ASYMMETRIC_ALGS)
        if not algorithms:
            raise IdpError(
                f"the IdP advertises no asymmetric ID-token algorithm ({advertised}); "
                "the bridge accepts only RS/PS/ES/EdDSA signatures"
            )
        methods = doc.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
        auth_method = (
            "client_secret_basic" if "client_secret_basic" in methods else "client_secret_post"
        )
        return cls(
            issuer=issuer,
            authorization_endpoint=str(endpoint("authorization_endpoint")),
            token_endpoint=str(endpoint("token_endpoint")),
            jwks_uri=str(endpoint("jwks_uri")),
            userinfo_endpoint=endpoint("userinfo_endpoint", required=False),
            end_session_endpoint=endpoint("end_session_endpoint", required=False),
            algorithms=algorithms,
            token_auth_method=auth_method,
            iss_in_response=doc.get("authorization_response_iss_parameter_supported") is True,
        )


@dataclass(frozen=True)
class LoginStart:
    url: str
    state: str
    nonce: str
    verifier: str


@dataclass
class ProviderStatus:
    ready: bool
    detail: str
    extra: dict[str, Any] = field(default_factory=dict)


def _alg_kty(alg: str) -> str:
    return KTY_FOR_ALG.get(alg[:2], "")


def loggable_url(url: str) -> str:
    """``url`` for the operator's log: without user info, query or fragment."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


def import_signing_keys(doc: Any) -> KeySet:
    """Import the public signature keys of a JWKS; symmetric and encryption keys are skipped."""
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        raise IdpError("the JWKS document has no 'keys' list")
    keys: list[RSAKey | ECKey | OKPKey] = []
    for entry in doc["keys"][:MAX_KEYS]:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        try:
            if entry.get("kty") == "RSA":
                keys.append(RSAKey.import_key(_public_only(entry)))
            elif entry.get("kty") == "EC":
                keys.append(ECKey.import_key(_public_only(entry)))
            elif entry.get("kty") == "OKP":
                keys.append(OKPKey.import_key(_public_only(entry)))
        except (JoseError, ValueError, TypeError):
            log.warning("skipped a JWKS key that could not be imported (kid=%s)", entry.get("kid"))
    if not keys:
        raise IdpError("the JWKS holds no usable public signature key")
    return KeySet(keys)  # type: ignore[arg-type]


def _public_only(entry: dict[str, Any]) -> dict[str, Any]:
    private = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}
    return {k: v for k, v in entry.items() if k not in private}


class _NoCookies(http.cookiejar.CookieJar):
    """A cookie jar that keeps no cookie, and does not read answers looking for one.

    Handed to httpx as the jar itself (httpx copies an ``httpx.Cookies`` into a plain jar).
    A refusing policy would keep nothing too, but only after ``http.cookiejar`` has copied
    every answer's headers three times over to find its Set-Cookie lines.
    """

    def extract_cookies(self, response: object, request: object) -> None:
        return None

    def set_cookie(self, cookie: http.cookiejar.Cookie) -> None:
        return None


def authorize_params(settings: ProviderSettings) -> dict[str, str]:
    """Extra authorize parameters: the preset's hints, then the operator's ``authorize_params``.

    Google's ``hd`` only narrows the account chooser; the ``hd`` claim is still checked.
    """
    params: dict[str, str] = {}
    if settings.preset == "google" and settings.access.hosted_domain:
        params["hd"] = settings.access.hosted_domain
    return {**params, **settings.authorize_params}


class Provider:
    """One configured IdP: its metadata, its keys, and the calls of the code flow."""

    def __init__(
        self,
        name: str,
        settings: ProviderSettings,
        *,
        issuer: str,
        redirect_uri: str,
        transport: httpx.AsyncBaseTransport,
        metrics: Metrics,
        clock: Callable[[], float] = time.time,
        client_id: str | None = None,
        client_secret: str | None = None,
    ) -> None:
        self.name = name
        self.settings = settings
        self.issuer = issuer
        self.redirect_uri = redirect_uri
        self.display_name = settings.display_name or PRESETS[settings.preset].display_name
        self.client_id = client_id or settings.client_id or ""
        secret = client_secret or (
            settings.client_secret.get_secret_value() if settings.client_secret else ""
        )
        self._client = AsyncOAuth2Client(
            client_id=self.client_id,
            client_secret=secret,
            scope=" ".join(settings.scopes),
            redirect_uri=redirect_uri,
            code_challenge_method="S256",
            timeout=settings.timeout,
            transport=transport,
            follow_redirects=False,
            trust_env=False,
            # One client serves every visitor: a cookie the IdP sets in one visitor's answer
            # (a load balancer's stickiness, say) must never ride along on another's call.
            cookies=_NoCookies(),
        )
        self._metrics = metrics
        # Wall time, for the ID token's exp/iat; the caches below keep monotonic time
        # of their own (``RemoteDocument.clock``), which tests move instead of sleeping.
        self._clock = clock
        self._accepted_issuers = {issuer, *PRESETS[settings.preset].issuer_aliases}
        #: The discovery document, parsed: refreshed daily, shared, kept through outages.
        self.discovery = RemoteDocument(
            f"{name}: discovery",
            self._fetch_metadata,
            max_age=METADATA_TTL,
            retry_after=RETRY_AFTER_FAILURE,
            refetch_interval=JWKS_REFETCH_INTERVAL,
        )
        #: The IdP's public signature keys: refreshed hourly, refetched for an unknown key.
        self.jwks = RemoteDocument(
            f"{name}: JWKS",
            self._fetch_keys,
            max_age=JWKS_TTL,
            retry_after=RETRY_AFTER_FAILURE,
            refetch_interval=JWKS_REFETCH_INTERVAL,
            on_fetched=self._count_jwks_fetch,
        )

    # --- HTTP --------------------------------------------------------------

    async def _call(self, endpoint: str, url: str, call: Callable[[], Awaitable[T]]) -> T:
        """Every IdP call: timed, and its failures mapped to idp_timeout / idp_error.

        httpx's timeouts bound each read, not the call: an IdP trickling its answer
        would hold a login forever, so the whole call gets one deadline. The
        operator's message names the URL (without its query) that failed.
        """
        started = time.perf_counter()
        where = f"{self.name}: the {endpoint} call to {loggable_url(url)}"
        try:
            async with asyncio.timeout(self.settings.timeout):
                return await call()
        except (httpx.TimeoutException, TimeoutError):
            raise IdpTimeout(f"{where} timed out after {self.settings.timeout}s") from None
        except (httpx.ConnectError, httpx.ProxyError) as exc:
            reason = "".join(c for c in str(exc) if c.isprintable())[:200]
            raise IdpUnreachable(
                f"{self.name}: could not reach the {endpoint} endpoint {loggable_url(url)}: "
                f"{type(exc).__name__}" + (f" ({reason})" if reason else "")
            ) from None
        except httpx.HTTPError as exc:
            raise IdpError(f"{where} failed: {type(exc).__name__}") from None
        finally:
            self._metrics.idp_latency.labels(self.name, endpoint).observe(
                time.perf_counter() - started
            )

    async def _get_json(
        self, endpoint: str, url: str, headers: dict[str, str] | None = None
    ) -> Any:
        async def call() -> httpx.Response:
            return await self._client.request("GET", url, headers=headers, withhold_token=True)  # type: ignore[no-any-return]

        response = await self._call(endpoint, url, call)
        if response.status_code != 200:
            raise IdpError(
                f"{self.name}: the {endpoint} endpoint {loggable_url(url)} answered "
                f"HTTP {response.status_code}"
            )
        if len(response.content) > MAX_DOCUMENT_BYTES:
            raise IdpError(f"{self.name}: the {endpoint} answer is too large")
        try:
            return response.json()
        except (ValueError, RecursionError):
            raise IdpError(f"{self.name}: the {endpoint} answer is not JSON") from None

    # --- metadata and keys ---------------------------------------------------

    async def discovery_document(self) -> Any:
        """The discovery document as fetched, unparsed: for ``check --online``'s report."""
        return await self._get_json("discovery", discovery_url(self.issuer))

    async def _fetch_metadata(self, url: str) -> Metadata:
        doc = await self._get_json("discovery", url)
        try:
            return Metadata.parse(doc, self.issuer)
        except IdpError as exc:
            raise IdpError(f"{self.name}: {exc.detail}") from None
        except (TypeError, ValueError) as exc:  # a value of the wrong type, a malformed URL
            raise IdpError(
                f"{self.name}: the discovery document is malformed ({type(exc).__name__})"
            ) from None

    async def _fetch_keys(self, url: str) -> KeySet:
        doc = await self._get_json("jwks", url)
        try:
            return import_signing_keys(doc)
        except IdpError as exc:
            raise IdpError(f"{self.name}: {exc.detail}") from None

    @property
    def accepted_issuers(self) -> frozenset[str]:
        """The configured issuer and its preset's aliases: what ``iss`` may say."""
        return frozenset(self._accepted_issuers)

    def _count_jwks_fetch(self, reason: Reason) -> None:
        self._metrics.jwks_refreshes.labels(self.name, reason).inc()

    async def metadata(self) -> Metadata:
        """Discovery, refreshed daily; during an outage the cached copy serves (``bridge.remote``).

        A login loads it once and hands it to the calls that follow.
        """
        return await self.discovery.get(discovery_url(self.issuer))

    async def keys(self, meta: Metadata | None = None) -> KeySet:
        """The IdP's keys, refreshed hourly; cached keys keep working while the JWKS is down."""
        meta = meta or await self.metadata()
        return await self.jwks.get(meta.jwks_uri)

    async def status(self) -> ProviderStatus:
        try:
            meta = await self.metadata()
            keys = await self.keys(meta)
        except (IdpError, IdpTimeout) as exc:
            return ProviderStatus(False, exc.detail)
        return ProviderStatus(True, "ready", {"issuer": meta.issuer, "keys": len(keys.keys)})

    async def verify_signature(
        self, compact: str, *, meta: Metadata, what: str = "ID token"
    ) -> jwt.Token:
        """A compact JWS the IdP signed (an ID token, a logout token), checked with its JWKS.

        Only an algorithm the IdP advertises, only a key from its ``jwks_uri``, never a
        key the token names itself; when no cached key verifies, one rate-limited
        refetch. Raises IdTokenInvalid; the claims are the caller's to validate.
        """
        try:
            header = jws.extract_compact(compact.encode()).protected
        except (JoseError, ValueError) as exc:
            raise IdTokenInvalid(
                f"{self.name}: the {what} is not a compact JWS: {type(exc).__name__}"
            ) from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in meta.algorithms:
            raise IdTokenInvalid(
                f"{self.name}: {what} algorithm {alg!r} is not one the IdP advertises "
                f"({', '.join(meta.algorithms)})"
            )
        foreign = sorted(FOREIGN_KEY_HEADERS & header.keys())
        if foreign:
            raise IdTokenInvalid(
                f"{self.name}: the {what} header names its own key source ({', '.join(foreign)})"
            )
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise IdTokenInvalid(f"{self.name}: the {what}'s kid is not a string")

        keys = await self.keys(meta)
        verified = self._verify_with(compact, alg, kid, keys, meta)
        if verified is None:
            # Truthful for the metric: a kid we have never seen, or a known (or no) kid
            # whose key does not verify (a key replaced in place).
            unknown = kid is not None and all(key.kid != kid for key in keys.keys)
            reason: Reason = "unknown_kid" if unknown else "signature_mismatch"
            fresh = await self.jwks.refetch(meta.jwks_uri, reason)
            if fresh is not None:
                verified = self._verify_with(compact, alg, kid, fresh, meta)
        if verified is None:
            raise IdTokenInvalid(
                f"{self.name}: the {what}'s signature matches no key of the IdP's JWKS "
                f"(kid={kid!r})"
            )
        return verified

    def _verify_with(
        self, compact: str, alg: str, kid: str | None, keys: KeySet, meta: Metadata
    ) -> jwt.Token | None:
        kty = _alg_kty(alg)
        candidates = [k for k in keys.keys if k.key_type == kty and (kid is None or k.kid == kid)]
        registry = JWSRegistry(algorithms=list(meta.algorithms), strict_check_header=False)
        for key in candidates:
            key_alg = key.get("alg")
            if key_alg is not None and key_alg != alg:
                continue
            try:
                return jwt.decode(compact, key, registry=registry)
            except JoseError:
                continue
        return None

    # --- the code flow --------------------------------------------------------

    async def start_login(self) -> LoginStart:
        """The authorize redirect: PKCE S256, ``state`` and ``nonce``."""
        meta = await self.metadata()
        # 192 bits each, one call to the OS (Authlib's generate_token asks it once a character).
        state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        verifier = secrets.token_urlsafe(48)
        url, _ = self._client.create_authorization_url(
            meta.authorization_endpoint,
            state=state,
            code_verifier=verifier,
            nonce=nonce,
            **authorize_params(self.settings),
        )
        return LoginStart(url=url, state=state, nonce=nonce, verifier=verifier)

    def check_response_issuer(self, iss: str | None, meta: Metadata) -> None:
        """RFC 9207: the authorization response names its issuer (mix-up defence)."""
        if iss is None:
            if meta.iss_in_response:
                raise IdTokenInvalid(
                    f"{self.name}: the authorization response lacks the iss parameter"
                )
            return
        if not hmac.compare_digest(iss.encode(), self.issuer.encode()):
            raise IdTokenInvalid(
                f"{self.name}: the authorization response came from another issuer"
            )

    async def exchange_code(self, code: str, verifier: str, *, meta: Metadata) -> dict[str, Any]:
        """The token request; ``meta`` is the discovery the callback loaded once."""
        self._client.token_endpoint_auth_method = meta.token_auth_method

        async def call() -> dict[str, Any]:
            token = await self._client.fetch_token(
                meta.token_url,
                grant_type="authorization_code",
                code=code,
                code_verifier=verifier,
                redirect_uri=self.redirect_uri,
            )
            if not isinstance(token, dict):
                raise ValueError("not a JSON object")
            return dict(token)

        try:
            token = await self._call("token", meta.token_endpoint, call)
        except OAuthError as exc:
            hint = self._token_error_hint(str(exc.error), exc.description)
            raise IdpError(f"{self.name}: the token endpoint refused: {hint}") from None
        except (ValueError, TypeError, RecursionError):
            # Authlib before 1.9 trips (TypeError) over a JSON answer that is not an object;
            # the JSON parser gives up (RecursionError) on nesting deeper than its stack.
            raise IdpError(
                f"{self.name}: the token endpoint's answer is not a JSON object"
            ) from None
        if not isinstance(token.get("id_token"), str):
            raise IdpError(
                f"{self.name}: the token response has no id_token (is 'openid' in scopes?)"
            )
        if str(token.get("token_type", "")).lower() != "bearer" or not isinstance(
            token.get("access_token"), str
        ):
            raise IdpError(f"{self.name}: the token response has no bearer access_token")
        return token

    def _token_error_hint(self, error: str, description: str | None) -> str:
        """The token endpoint's error (RFC 6749 5.2) and what the operator should fix."""
        said = "".join(c for c in description or "" if c.isprintable())[:200]
        error = "".join(c for c in error if c.isprintable())[:64]
        text = error + (f" ({said})" if said else "")
        client = f"client {self.client_id!r}"
        if error == "redirect_uri_mismatch" or (
            error in ("invalid_grant", "invalid_request") and "redirect" in said.lower()
        ):
            return (
                f"{text}: register exactly {self.redirect_uri} as a redirect URI of {client} "
                "at the IdP (the bridge derives it from server.public_url)"
            )
        if error == "invalid_client":
            return (
                f"{text}: the IdP does not accept {client} with the configured secret: fix "
                f"providers.{self.name}.client_id or client_secret (an expired or rotated "
                "secret looks the same)"
            )
        if error == "unauthorized_client":
            return (
                f"{text}: {client} may not use the authorization code grant: enable it at "
                "the IdP (Keycloak: Standard flow; Okta, Auth0: grant type Authorization Code)"
            )
        if error == "invalid_grant":
            return (
                f"{text}: the code was refused: already used, expired, or the redirect URI "
                f"registered at the IdP is not exactly {self.redirect_uri}"
            )
        return f"{text}: see the IdP's logs"

    async def verify_id_token(
        self, id_token: str, *, nonce: str, access_token: str | None, meta: Metadata
    ) -> dict[str, Any]:
        """OpenID Connect Core 1.0 section 3.1.3.7, every step."""
        verified = await self.verify_signature(id_token, meta=meta)
        options: dict[str, Any] = {
            "iss": {"essential": True, "values": sorted(self._accepted_issuers)},
            "sub": {"essential": True},
            "aud": {"essential": True, "value": self.client_id},
            "exp": {"essential": True},
            "iat": {"essential": True},
            "nonce": {"essential": True},
        }
        params: dict[str, Any] = {"nonce": nonce, "client_id": self.client_id}
        if access_token:
            params["access_token"] = access_token
        claims = CodeIDToken(verified.claims, verified.header, options, params)
        try:
            claims.validate(now=int(self._clock()), leeway=self.settings.leeway)
        except JoseError as exc:
            raise IdTokenInvalid(
                f"{self.name}: ID token rejected: {exc.error}: {exc.description or ''}".rstrip(": ")
            ) from None
        return dict(claims)

    async def userinfo(
        self, access_token: str, id_claims: Mapping[str, Any], *, meta: Metadata
    ) -> dict[str, Any]:
        """Userinfo claims, only when the ``sub`` matches the ID token's (OIDC Core 5.3.4).

        Not asked (``{}``) when the IdP publishes no endpoint, with ``userinfo = false``, or
        with ``"auto"`` when the ID token holds every claim the mapping and access rules read
        (``identity.userinfo_needed``): its answer could not change the outcome.
        """
        if not meta.userinfo_endpoint or not userinfo_needed(self.settings, id_claims):
            return {}
        data = await self._get_json(
            "userinfo", meta.userinfo_endpoint, headers={"Authorization": f"Bearer {access_token}"}
        )
        if not isinstance(data, dict):
            raise IdpError(f"{self.name}: the userinfo answer is not a JSON object")
        if data.get("sub") != id_claims["sub"]:
            raise IdTokenInvalid(f"{self.name}: the userinfo sub differs from the ID token's sub")
        return data

    async def logout_url(
        self, *, id_token_hint: str | None, post_logout_redirect_uri: str, state: str | None = None
    ) -> str | None:
        """RP-initiated logout, where the IdP publishes an end_session_endpoint.

        ``state`` comes back to the post-logout redirect URI unchanged (RP-Initiated Logout §3).
        """
        try:
            meta = await self.metadata()
        except (IdpError, IdpTimeout):
            return None
        if not meta.end_session_endpoint:
            return None
        params = {"post_logout_redirect_uri": post_logout_redirect_uri, "client_id": self.client_id}
        if id_token_hint:
            params["id_token_hint"] = id_token_hint
        if state:
            params["state"] = state
        separator = "&" if urlsplit(meta.end_session_endpoint).query else "?"
        return meta.end_session_endpoint + separator + urlencode(params)

    async def aclose(self) -> None:
        await self.discovery.aclose()
        await self.jwks.aclose()
        await self._client.aclose()
