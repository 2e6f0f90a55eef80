"""Routes and the Starlette app factory: thin, it calls the modules that do the work."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import gc
import json
import logging
import secrets
import ssl
import time
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import certifi
import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from bridge import embed, identity, logout_token, netbackend, outbound, sessions, tiledesk
from bridge.embed import SiteReturn
from bridge.errors import (
    ANY_PROVIDER,
    AccessDenied,
    BridgeError,
    CrossSiteRefused,
    IdpDenied,
    IdpError,
    IdpTimeout,
    IdTokenInvalid,
    InvalidRequest,
    MethodNotAllowed,
    MissingCode,
    NotFound,
    NotSignedIn,
    StateMismatch,
    _,
)
from bridge.handles import (
    HandleStore,
    MemoryHandleStore,
    RedisHandleStore,
    looks_like_handle,
)
from bridge.identity import TiledeskUser
from bridge.logout_token import LogoutTokenInvalid
from bridge.logs import request_id
from bridge.metrics import CONTENT_TYPE_LATEST, OTHER, Metrics
from bridge.middleware import DEFAULT_CSP, EdgeMiddleware, RawHeaders, encoded_headers
from bridge.oidc import Provider
from bridge.pages import LANG_COOKIE, STATIC_DIR, TEMPLATES_DIR, Branding, Pages, match_language
from bridge.redis_client import RedisClient, StoreStatus
from bridge.redis_sessions import RedisSessionStore
from bridge.responses import JSONResponse, render_json
from bridge.revocations import (
    MemoryRevocations,
    RedisRevocations,
    RevocationCheckingStore,
    Revocations,
)
from bridge.session_middleware import SessionMiddleware, cookie_room
from bridge.session_store import CookieSealer, CookieStore, SessionStore
from bridge.settings import Settings
from bridge.spent import MemorySpent, RedisSpent, Spent

log = logging.getLogger("bridge.web")
MAX_PARAM = 4096
DEV_IDP_PATH = "/dev-idp"
MAX_NEXT = 512
MAX_CALLBACK_PARAMS = 20
MAX_AUTH_BODY = 1024
#: A logout token is a few hundred bytes; a body far larger is not one.
MAX_LOGOUT_BODY = 16 * 1024
#: Set by POST /logout, read once by GET /: the IdP sends the visitor back to <public_url>/.
SIGNED_OUT_COOKIE = "bridge_signed_out"
SIGNED_OUT_MAX_AGE = 300
LANG_COOKIE_MAX_AGE = 365 * 24 * 3600
#: Where a request keeps the language negotiated for it (the ASGI scope is per request).
_LANGUAGE_KEY = "bridge.language"
#: How long the page waits for the widget script before saying the chat could not load.
CHAT_TIMEOUT_MS = 20_000


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One verified TLS context per process: loading the CA bundle costs ~50 ms each time."""
    return ssl.create_default_context(cafile=certifi.where())


def outbound_transport(settings: Settings) -> httpx.AsyncBaseTransport:
    """The one pooled transport every IdP and Tiledesk call goes through (``bridge.outbound``)."""
    return outbound.BoundedTransport(
        netbackend.install(
            httpx.AsyncHTTPTransport(
                retries=0,
                verify=_tls_context(),
                proxy=settings.server.outbound_proxy,
                limits=outbound.LIMITS,
            )
        )
    )


class Bridge:
    """Everything the routes share: settings, providers, templates, metrics."""

    def __init__(
        self, settings: Settings, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.settings = settings
        #: This site's origin, for the cross-site check of every POST.
        self.origin = settings.server.origin
        self.metrics = Metrics()
        self.transport = transport or outbound_transport(settings)
        #: Shared by every instance when Redis is configured; this process's memory otherwise.
        self.redis = RedisClient(settings.session) if settings.session.redis_url else None
        self.spent: Spent = RedisSpent(self.redis) if self.redis else MemorySpent()
        session = settings.session
        sealer = CookieSealer(
            session.secret.get_secret_value(),
            [s.get_secret_value() for s in session.previous_secrets],
            cookie_name=session.cookie_name,
        )
        #: Where the session middleware keeps sessions; a back-channel logout ends them here.
        self.redis_sessions: RedisSessionStore | None = None
        self.revocations: Revocations | None = None
        self.session_store: SessionStore
        if session.store == "redis":
            assert self.redis is not None
            self.redis_sessions = RedisSessionStore(self.redis, sealer, max_age=session.max_age)
            self.session_store = self.redis_sessions
        else:
            self.revocations = (
                RedisRevocations(self.redis, ttl=session.max_age)
                if self.redis
                else MemoryRevocations(ttl=session.max_age)
            )
            cookies = CookieStore(sealer, max_value=cookie_room(session, settings.https_only))
            self.session_store = RevocationCheckingStore(cookies, self.revocations)
        #: One-time handles for sites' sign-ins and their way back after logout.
        self.handles: HandleStore = (
            RedisHandleStore(self.redis) if self.redis is not None else MemoryHandleStore()
        )
        page_conf = settings.pages
        self.logo_file = page_conf.logo_file
        logo_url = page_conf.logo
        if self.logo_file is not None:
            logo_url = f"/brand/logo{self.logo_file.suffix.lower()}"
        self.branding = Branding(
            title=page_conf.title,
            logo_url=logo_url,
            footer=page_conf.footer,
            support_url=page_conf.support_url,
            accent=page_conf.accent,
        )
        self.pages = Pages(
            languages=page_conf.languages,
            default_language=page_conf.default_language,
            templates_dir=page_conf.templates_dir,
            branding=self.branding,
        )
        self.csp = DEFAULT_CSP
        if logo_url and self.logo_file is None:
            logo_origin = "{0.scheme}://{0.netloc}".format(urlsplit(logo_url))
            self.csp = DEFAULT_CSP.replace(
                "img-src 'self' data:", f"img-src 'self' data: {logo_origin}"
            )
        self.dev_idp: Starlette | None = None
        self.providers: dict[str, Provider] = {}
        for name, conf in settings.providers.items():
            provider_transport = self.transport
            client_id = client_secret = None
            if conf.preset == "dev":
                # Imported only here: production never loads the development IdP.
                from bridge.devidp import create_dev_idp

                # The demo IdP lives in this process: talk to it in-process, not over the socket.
                client_id, client_secret = conf.client_id or "bridge-dev", secrets.token_urlsafe(32)
                self.dev_idp = create_dev_idp(
                    issuer=settings.issuer(name),
                    client_id=client_id,
                    client_secret=client_secret,
                    redirect_uris=[settings.redirect_uri(name)],
                    post_logout_redirect_uris=[settings.url("/")],
                    templates_dir=TEMPLATES_DIR,
                )
                provider_transport = httpx.ASGITransport(
                    app=Starlette(routes=[Mount(DEV_IDP_PATH, app=self.dev_idp)])
                )
            self.providers[name] = Provider(
                name,
                conf,
                issuer=settings.issuer(name),
                redirect_uri=settings.redirect_uri(name),
                transport=provider_transport,
                metrics=self.metrics,
                client_id=client_id,
                client_secret=client_secret,
            )

    def render(
        self,
        request: Request,
        template: str,
        status: int = 200,
        *,
        reload_with: dict[str, str] | None = None,
        **context: Any,
    ) -> HTMLResponse:
        """A page in the visitor's language; a ?lang= choice is remembered in a cookie.

        The language links reload this page (with ``reload_with`` as its query, for a page
        that needs one), or go to the start from anywhere else.
        """
        language = self.language(request)
        here, keep = "/", {}
        if reload_with is not None:
            here, keep = request.url.path, reload_with
        elif request.url.path in ("/", "/login"):
            here = request.url.path
            next_path = safe_next(request.query_params.get("next"))
            keep = {"next": next_path} if next_path != "/" else {}
        keep_query = f"{urlencode(keep)}&" if keep else ""
        page = self.pages.render(
            language,
            template,
            {
                "providers": self.providers.values(),
                "lang_url": lambda code: f"{here}?{keep_query}lang={quote(code)}",
                **context,
            },
        )
        response = HTMLResponse(
            page,
            status_code=status,
            headers={
                "Cache-Control": "no-store",
                "Content-Security-Policy": self.csp,
                "Content-Language": language,
            },
        )
        chosen = request.query_params.get("lang")
        if chosen == language and request.cookies.get(LANG_COOKIE) != language:
            response.set_cookie(
                LANG_COOKIE,
                language,
                max_age=LANG_COOKIE_MAX_AGE,
                httponly=True,
                secure=self.settings.https_only,
                samesite="lax",
            )
        return response

    def language(self, request: Request) -> str:
        """The visitor's language, negotiated once per request: a page asks for every string."""
        language: str | None = request.scope.get(_LANGUAGE_KEY)
        if language is None:
            chosen = request.query_params.get("lang") or request.cookies.get(LANG_COOKIE)
            language = self.pages.negotiate(request.headers.get("accept-language"), chosen)
            request.scope[_LANGUAGE_KEY] = language
        return language

    def gettext(self, request: Request, message: str, provider: Provider | None = None) -> str:
        """A visitor-facing string from Python code, with {provider} named for the visitor."""
        text = self.pages.gettext(self.language(request), message)
        if "{provider}" in text:
            name = (
                provider.display_name
                if provider
                else self.pages.gettext(self.language(request), ANY_PROVIDER)
            )
            text = text.replace("{provider}", name)
            text = text[:1].upper() + text[1:]
        return text

    def provider(self, name: str) -> Provider:
        provider = self.providers.get(name)
        if provider is None:
            raise NotFound(f"no provider named {name[:40]!r}")
        return provider

    async def warm_up(self) -> None:
        """Load every provider's discovery and keys at start; a failure only shows in /readyz."""
        results = await asyncio.gather(*(p.status() for p in self.providers.values()))
        for provider, status in zip(self.providers.values(), results, strict=True):
            if not status.ready:
                log.warning("provider %s is not ready: %s", provider.name, status.detail)

    async def end_sessions(self, provider: str, *, sub: str | None, sid: str | None) -> str:
        """Sign out the IdP session ``sid`` or, without one, every session of ``sub``."""
        if self.redis_sessions is not None:
            ended = await self.redis_sessions.end_sessions(provider, sub=sub, sid=sid)
            return f"{ended} session(s) ended"
        assert self.revocations is not None
        await self.revocations.revoke(provider, sub=sub, sid=sid, at=int(time.time()))
        return "recorded for the cookie sessions signed in before now"

    async def aclose(self) -> None:
        for provider in self.providers.values():
            await provider.aclose()
        await self.transport.aclose()
        if self.redis is not None:
            await self.redis.aclose()


def _bridge(request: Request) -> Bridge:
    return request.app.state.bridge  # type: ignore[no-any-return]


# --- helpers -----------------------------------------------------------------------


def safe_next(value: str | None) -> str:
    """A path on this site, or '/': never another origin, whatever the spelling."""
    if not value or len(value) > MAX_NEXT:
        return "/"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value) or "\\" in value:
        return "/"
    if not value.startswith("/") or value.startswith("//"):
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return "/"
    return value


def _param(request: Request, name: str) -> str | None:
    values = request.query_params.getlist(name)
    if len(values) > 1:
        raise InvalidRequest(f"the {name} parameter is repeated")
    if not values:
        return None
    if len(values[0]) > MAX_PARAM:
        raise InvalidRequest(f"the {name} parameter is too long")
    return values[0]


def _check_origin(request: Request) -> str | None:
    """CSRF: a state-changing POST must come from this site or an allowed origin.

    Returns the allowed foreign origin (for CORS headers), or None for same-origin.
    """
    headers = request.headers
    return _origin_of(
        _bridge(request), headers.get("origin"), headers.get("sec-fetch-site"), request.url.path
    )


def _origin_of(bridge: Bridge, origin: str | None, fetch_site: str | None, path: str) -> str | None:
    """:func:`_check_origin` on the two headers it reads."""
    if origin is not None:
        origin = origin.lower()
        if origin == bridge.origin:
            return None
        # Under Referrer-Policy: no-referrer a browser's own form POST says "Origin: null";
        # Sec-Fetch-Site, which no page can forge, tells it came from this site.
        if origin == "null" and fetch_site == "same-origin":
            return None
        if origin in bridge.settings.sites:
            return origin
        raise CrossSiteRefused(f"refused a {path} call from origin {origin[:100]!r}")
    if fetch_site not in (None, "same-origin", "none"):
        raise CrossSiteRefused(f"refused a {path} call with Sec-Fetch-Site {fetch_site[:20]!r}")
    return None


_cors_headers = embed.cors_headers


def _log_login(provider: str, outcome: str, started: float, detail: str = "") -> None:
    fields = {
        "provider": provider,
        "outcome": outcome,
        "duration_ms": int((time.perf_counter() - started) * 1000),
    }
    if outcome == "ok":
        log.info("login ok", extra={"fields": fields})
    else:
        log.warning("login failed: %s", detail, extra={"fields": fields})


# --- routes ------------------------------------------------------------------------


async def index(request: Request) -> Response:
    bridge = _bridge(request)
    settings = bridge.settings
    back = await _after_site_logout(request, bridge)
    if back is not None:
        return back
    user = sessions.signed_in_user(request.session)
    provider = bridge.providers.get(str(request.session.get("p", "")))
    # The demo shows the token it handed over; a real IdP's users never see it.
    show_token = user is not None and provider is not None and provider.settings.preset == "dev"
    language = bridge.language(request)
    widget_settings = {
        "lang": language,  # unless the operator set the widget's language
        **settings.tiledesk.widget,
        "projectid": settings.tiledesk.project_id,
        "autoStart": False,
    }
    text = functools.partial(bridge.gettext, request)
    config = {
        "signedIn": user is not None,
        "authUrl": "/auth",
        "widgetUrl": settings.tiledesk.widget_url,
        "tiledeskSettings": widget_settings,
        "chatTimeoutMs": CHAT_TIMEOUT_MS,
        "messages": {
            "connecting": text(_("Connecting the chat…")),
            "connected": text(_("Chat connected.")),
            "sessionEnded": text(_("Your session has ended. Please sign in again.")),
            "signInFailed": text(
                _("The chat could not sign you in. Reload the page to try again.")
            ),
            "notLoaded": text(
                _(
                    "The chat could not load. An ad blocker, a browser extension or a "
                    "company firewall may be blocking it: allow this site, or try another "
                    "network, then reload the page."
                )
            ),
        },
    }
    signed_out = None if user else _signed_out_notice(request, bridge)
    response = bridge.render(
        request,
        "index.html",
        user=user,
        show_token=show_token,
        signed_out=signed_out,
        config_json=json.dumps(config).replace("</", "<\\/"),
    )
    if SIGNED_OUT_COOKIE in request.cookies:
        response.delete_cookie(SIGNED_OUT_COOKIE, httponly=True, samesite="lax")
    # The widget builds its iframe from inline markup, so this page cannot forbid scripts.
    response.headers["Content-Security-Policy"] = (
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    )
    return response


async def _after_site_logout(request: Request, bridge: Bridge) -> Response | None:
    """Back from the IdP's logout to the site page it started on (carried in ``state``)."""
    state = request.query_params.get("state")
    if not looks_like_handle(state) or sessions.signed_in_user(request.session) is not None:
        return None
    assert state is not None
    payload = await bridge.handles.redeem(state, embed.LOGOUT_ORIGIN)
    page = embed.site_page(bridge.settings, str((payload or {}).get("return_to", "")))
    if page is None:
        return None
    return RedirectResponse(page[1], status_code=303, headers={"Cache-Control": "no-store"})


def _signed_out_notice(request: Request, bridge: Bridge) -> dict[str, Any] | None:
    """What POST /logout left for this page: which provider, and whether its session ended."""
    name, _sep, ended = request.cookies.get(SIGNED_OUT_COOKIE, "").partition(":")
    provider = bridge.providers.get(name)
    if provider is None or ended not in ("0", "1"):
        return None
    return {"provider": provider.display_name, "idp_ended": ended == "1"}


async def chooser(request: Request) -> Response:
    bridge = _bridge(request)
    next_path = safe_next(request.query_params.get("next"))
    site = _site_return(request, bridge)
    names = list(bridge.providers)
    if site is not None:
        names = list(bridge.settings.site_providers(site.origin))
    if len(names) == 1:
        return RedirectResponse(_login_path(names[0], next_path, site), status_code=303)
    return bridge.render(
        request,
        "chooser.html",
        next=next_path,
        providers=[bridge.providers[name] for name in names],
        login_path=functools.partial(_login_path, site=site),
    )


def _login_path(name: str, next_path: str, site: SiteReturn | None = None) -> str:
    query: dict[str, str] = {}
    if next_path != "/":
        query["next"] = next_path
    if site is not None:
        query.update(return_to=site.url, mode=site.mode, challenge=site.challenge)
    return f"/login/{name}" + (f"?{urlencode(query)}" if query else "")


def _site_return(request: Request, bridge: Bridge) -> SiteReturn | None:
    """A sign-in started on an embedding site; refused outright when it names a bad page."""
    return_to = _param(request, "return_to")
    if return_to is None:
        return None
    site = embed.site_return(
        bridge.settings, return_to, _param(request, "mode"), _param(request, "challenge")
    )
    if site is None:
        raise InvalidRequest("return_to is not a page of a site in [sites], or its mode is off")
    return site


async def login(request: Request) -> Response:
    bridge = _bridge(request)
    provider = bridge.provider(request.path_params["provider"])
    next_path = safe_next(_param(request, "next"))
    site = _site_return(request, bridge)
    if site is not None and provider.name not in bridge.settings.site_providers(site.origin):
        raise InvalidRequest(f"{site.origin} does not offer the provider {provider.name}")
    try:
        start = await provider.start_login()
    except BridgeError as exc:
        if site is None:
            raise
        # The IdP is down: the site says so, rather than the popup showing our error page.
        log.warning("%s: %s", exc.code, exc.detail)
        bridge.metrics.error(exc.code)
        target = embed.landing_url(site.url, site.mode, error=exc.code)
        return RedirectResponse(target, status_code=303, headers={"Cache-Control": "no-store"})
    flow = sessions.Flow(provider.name, start.nonce, start.verifier, next_path, time.time())
    if site is not None:
        flow = dataclasses.replace(
            flow, return_to=site.url, mode=site.mode, challenge=site.challenge
        )
    sessions.add_flow(request.session, start.state, flow)
    return RedirectResponse(start.url, status_code=302, headers={"Cache-Control": "no-store"})


async def callback(request: Request) -> Response:
    bridge = _bridge(request)
    started = time.perf_counter()
    name = request.path_params["provider"]
    provider = bridge.provider(name)
    flow: sessions.Flow | None = None
    try:
        flow = _callback_flow(request)
        response = await _complete_login(request, bridge, provider, flow)
    except BridgeError as exc:
        bridge.metrics.login(provider.name, exc.code)
        _log_login(provider.name, exc.code, started, exc.detail)
        request.state.logged_error = exc
        page = embed.site_page(bridge.settings, flow.return_to) if flow is not None else None
        if flow is not None and flow.mode is not None and page is not None:
            # The visitor started on a site: the error is shown there, not on our page.
            bridge.metrics.error(exc.code)
            target = embed.landing_url(page[1], flow.mode, error=exc.code)
            return RedirectResponse(target, status_code=303, headers={"Cache-Control": "no-store"})
        raise
    bridge.metrics.login(provider.name, "ok")
    _log_login(provider.name, "ok", started)
    return response


def _callback_flow(request: Request) -> sessions.Flow:
    if len(request.query_params.multi_items()) > MAX_CALLBACK_PARAMS:
        raise InvalidRequest("too many callback parameters")
    state = _param(request, "state")
    if not state:
        raise StateMismatch("the callback has no state")
    flow = sessions.pop_flow(request.session, state)
    if flow is None:
        raise StateMismatch("no login flow in this browser session matches the state")
    return flow


async def _complete_login(
    request: Request, bridge: Bridge, provider: Provider, flow: sessions.Flow
) -> Response:
    state = _param(request, "state")
    assert state is not None
    if not await bridge.spent.spend("state", state, sessions.FLOW_TTL):
        raise StateMismatch("the state was already used")
    if flow.provider != provider.name:
        raise StateMismatch(f"the flow was started for {flow.provider}, not {provider.name}")
    error = _param(request, "error")
    meta = await provider.metadata()
    provider.check_response_issuer(_param(request, "iss"), meta)
    if error is not None:
        raise IdpDenied(error, _param(request, "error_description"))
    code = _param(request, "code")
    if not code:
        raise MissingCode("the callback has no code")

    token = await provider.exchange_code(code, flow.verifier, meta=meta)
    claims = await provider.verify_id_token(
        token["id_token"], nonce=flow.nonce, access_token=token.get("access_token"), meta=meta
    )
    userinfo = await provider.userinfo(token["access_token"], claims, meta=meta)
    merged = {**userinfo, **claims}
    decision = identity.decide(provider.settings, merged)
    if not decision.allowed:
        raise AccessDenied(decision.reason)
    try:
        user = identity.map_user(
            project_id=bridge.settings.tiledesk.project_id,
            provider_name=provider.name,
            provider=provider.settings,
            issuer=provider.issuer,
            claims=merged,
        )
    except ValueError as exc:
        raise IdTokenInvalid(str(exc)) from None
    page = embed.site_page(bridge.settings, flow.return_to)
    if flow.return_to is not None and page is None:  # [sites] changed meanwhile
        raise InvalidRequest("the page this sign-in started on is no longer an allowed site")
    sessions.sign_in(
        request.session,
        provider=provider.name,
        user=user,
        id_token=token["id_token"],
        claims=claims,
    )
    if page is not None and flow.mode is not None:
        handle = await bridge.handles.issue(
            {"user": user.as_dict(), "challenge": flow.challenge},
            origin=page[0],
            ttl=embed.SIGN_IN_HANDLE_TTL,
        )
        target = embed.landing_url(page[1], flow.mode, handle=handle)
        return RedirectResponse(target, status_code=303, headers={"Cache-Control": "no-store"})
    return RedirectResponse(bridge.settings.url(flow.next), status_code=303)


class AuthEndpoint:
    """``POST /auth``: a fresh Tiledesk token for the signed-in visitor, else 401.

    Every page load that shows the chat asks it, so it is plain ASGI: it reads the four
    headers it needs straight from the scope and builds its answer (:meth:`answer`) with
    orjson, with no request or response objects. :class:`BridgeApp` serves it in front
    of Starlette's stack (:class:`AuthFront`), with the same edge and session steps as
    every route; it sits in the router too (for the 405 of another method), where it
    answers the same.
    """

    path = "/auth"

    def __init__(self, bridge: Bridge) -> None:
        self.bridge = bridge
        conf = bridge.settings.tiledesk
        self.minter = tiledesk.Minter(
            project_id=conf.project_id, secret=conf.secret.get_secret_value(), ttl=conf.token_ttl
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        status, headers, body = await self.answer(scope, receive)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def answer(self, scope: Scope, receive: Receive) -> Answer:
        """The answer's status, headers and body, for the session in ``scope["session"]``."""
        bridge = self.bridge
        origin_header = fetch_site = None
        has_body = False
        for name, value in scope["headers"]:
            if name == b"origin":
                origin_header = origin_header or value.decode("latin-1")
            elif name == b"sec-fetch-site":
                fetch_site = fetch_site or value.decode("latin-1")
            elif name == b"content-length":
                has_body = has_body or value != b"0"
            elif name == b"transfer-encoding":
                has_body = True
        try:
            try:
                origin = _origin_of(bridge, origin_header, fetch_site, self.path)
            except CrossSiteRefused:
                bridge.metrics.auth_cross_site.inc()
                raise
            user = sessions.signed_in_user(scope["session"])
            if origin is not None and has_body:
                user = await _redeem_sign_in(Request(scope, receive), bridge, origin)
        except BridgeError as exc:
            response = await bridge_error(Request(scope, receive), exc)
            return response.status_code, response.raw_headers, bytes(response.body)
        if user is None:
            bridge.metrics.auth_not_signed_in.inc()
            return _json_answer(401, {"error": NotSignedIn.code}, origin)
        minted = self.minter.mint(user)
        bridge.metrics.auth_ok.inc()
        body = {"token": minted.token, "expires_at": minted.expires_at, "user": user.as_dict()}
        return _json_answer(200, body, origin)


#: An answer as ASGI sends it: status, raw headers, body.
Answer = tuple[int, RawHeaders, bytes]
_NO_STORE_JSON = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]


def _json_answer(status: int, body: dict[str, Any], origin: str | None) -> Answer:
    """A JSON answer that no cache keeps, with CORS headers for an allowed site."""
    data = render_json(body)
    headers = [(b"content-length", str(len(data)).encode()), *_NO_STORE_JSON]
    if origin is not None:
        headers += encoded_headers(_cors_headers(origin).items())
    return status, headers, data


class AuthFront:
    """``POST /auth``'s way in, in front of Starlette's stack: the edge and session
    middleware's steps and the endpoint, taken in the middleware's order in one coroutine.

    Starlette wraps every route in its error and exception layers, the router and a
    request object, and each middleware wraps the answer's ``send`` in one more closure.
    ``/auth`` runs on every page load that shows the chat and needs none of that: it
    renders its own error answers, and its answer is one status, one header list and one
    body. So here the same methods run one after the other (``enter``, ``forward``,
    ``open``, the endpoint's ``answer``, ``set_cookies``, ``answer_headers``; ``fail``
    for any exception), with no wrapper around ``send``. ``tests/test_auth_front.py``
    sends every kind of request both ways and requires the same answer.
    """

    def __init__(
        self, edge: EdgeMiddleware, session: SessionMiddleware, endpoint: AuthEndpoint
    ) -> None:
        self.edge = edge
        self.session = session
        self.endpoint = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        edge = self.edge
        rid, token = edge.enter(scope)
        started = False
        try:
            if edge.proxies is not None:
                await edge.forward(scope)
            opened = await self.session.open(scope)
            status, headers, body = await self.endpoint.answer(scope, receive)
            cookies = await self.session.set_cookies(scope, opened)
            if cookies:
                headers = [*headers, *cookies]
            headers = edge.answer_headers(headers, rid)
            started = True
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
        except Exception as exc:
            await edge.fail(scope, receive, send, rid, exc, started)
        finally:
            request_id.reset(token)


async def _redeem_sign_in(request: Request, bridge: Bridge, origin: str) -> TiledeskUser | None:
    """A site's script hands back the handle its sign-in ended with, and its verifier."""
    length = request.headers.get("content-length", "")
    if not length.isdigit() or int(length) > MAX_AUTH_BODY:
        raise InvalidRequest("the /auth body is missing its length or too long")
    try:
        body = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest("the /auth body is not JSON") from None
    if not isinstance(body, dict) or not looks_like_handle(body.get("handle")):
        raise InvalidRequest("the /auth body has no handle")
    payload = await bridge.handles.redeem(body["handle"], origin)
    if payload is None:
        log.info("a sign-in handle was unknown, spent, expired or presented by another origin")
        return None
    if not embed.verifier_matches(body.get("verifier"), payload.get("challenge")):
        log.warning("a sign-in handle came without the verifier of the page that started it")
        return None
    try:
        return TiledeskUser.from_dict(payload["user"])
    except (KeyError, TypeError, ValueError):
        return None


async def embed_config(request: Request) -> Response:
    """The widget settings, providers and words for the site asking (CORS: [sites] only).

    In the page's language (``?lang=``, which the script takes from its ``data-lang`` or the
    page's ``<html lang>``) when the bridge offers it, else the browser's, else the default:
    the config is fetched without credentials, so no language cookie comes along.
    """
    bridge = _bridge(request)
    origin = (request.headers.get("origin") or "").lower()
    if origin not in bridge.settings.sites:
        return embed.config_response(None, None)
    pages = bridge.pages
    language = pages.negotiate(
        request.headers.get("accept-language"),
        match_language(request.query_params.get("lang"), pages.languages),
    )
    names = {name: p.display_name for name, p in bridge.providers.items()}
    config = embed.site_config(bridge.settings, origin, names, language=language)
    config["messages"] = _site_messages(functools.partial(pages.gettext, language))
    return embed.config_response(config, origin, language=language)


def _site_messages(text: Callable[[str], str]) -> dict[str, Any]:
    """Every word the embed script shows on a site, in its popup and on its own control."""
    return {
        "signIn": text(_("Sign in to chat")),
        "popupDone": text(_("Sign-in finished. You can close this window.")),
        "popupFailed": text(_("The sign-in did not complete. You can close this window.")),
        "errors": {
            "access_denied": text(_("Your account may not use this chat.")),
            "popup_closed": text(_("The sign-in window was closed before the sign-in finished.")),
            "idp_error": text(
                _(
                    "The sign-in service could not be reached or answered with an error. "
                    "Please try again in a few minutes."
                )
            ),
            "idp_timeout": text(_("The sign-in service did not answer in time. Please try again.")),
            "store_unavailable": text(
                _("Sign-in is unavailable for a moment. Please try again shortly.")
            ),
            "sign_in_failed": text(_("The sign-in did not complete. Please try again.")),
            "timeout": text(_("The sign-in took too long. Please try again.")),
        },
        "otherError": text(_("The sign-in did not complete ({code}). Please try again.")),
    }


async def embed_js(request: Request) -> Response:
    return embed.embed_js(request)


async def auth_preflight(request: Request) -> Response:
    settings = _bridge(request).settings
    origin = (request.headers.get("origin") or "").lower()
    if origin not in settings.sites:
        return Response(status_code=403)
    headers = {
        **_cors_headers(origin),
        "Access-Control-Allow-Methods": "POST",
        "Access-Control-Allow-Headers": "Content-Type, Accept, X-Requested-With",
        "Access-Control-Max-Age": "600",
    }
    return Response(status_code=204, headers=headers)


async def logout(request: Request) -> Response:
    bridge = _bridge(request)
    origin = _check_origin(request)
    provider_name = request.session.get("p")
    hint = request.session.get(sessions.HINT_KEY)
    signed_in = sessions.signed_in_user(request.session) is not None
    request.session.clear()
    # A site may ask to come back to one of its pages once the IdP has ended its session too.
    page = embed.site_page(bridge.settings, _param(request, "return_to"))
    if page is not None and origin is not None and page[0] != origin:
        page = None
    target = bridge.settings.url("/")
    provider = bridge.providers.get(provider_name) if isinstance(provider_name, str) else None
    end_session = None
    if provider is not None:
        state = None
        if page is not None:
            state = await bridge.handles.issue(
                {"return_to": page[1]}, origin=embed.LOGOUT_ORIGIN, ttl=embed.LOGOUT_HANDLE_TTL
            )
        end_session = await provider.logout_url(
            id_token_hint=hint if isinstance(hint, str) else None,
            post_logout_redirect_uri=target,
            state=state,
        )
    headers = {"Cache-Control": "no-store", **_cors_headers(origin)}
    if origin is not None:
        # A site's script: it signs the widget out itself and takes the visitor to the IdP.
        return JSONResponse({"signed_out": signed_in, "redirect": end_session}, headers=headers)
    if end_session:
        target = end_session
    elif page is not None:
        target = page[1]
    response = RedirectResponse(target, status_code=303, headers=headers)
    if provider is not None:
        # Read once by GET /, where the IdP sends the visitor back: "You are signed out".
        response.set_cookie(
            SIGNED_OUT_COOKIE,
            f"{provider.name}:{int(end_session is not None)}",
            max_age=SIGNED_OUT_MAX_AGE,
            httponly=True,
            secure=bridge.settings.https_only,
            samesite="lax",
        )
    return response


async def site_logout(request: Request) -> Response:
    """Sign-out for a site whose calls cannot carry our cookie: a top-level visit, one click.

    A click, not an automatic POST: no other site can sign a visitor out behind their back.
    """
    bridge = _bridge(request)
    page = embed.site_page(bridge.settings, _param(request, "return_to"))
    if page is None:
        raise InvalidRequest("return_to is not a page of a site in [sites]")
    user = sessions.signed_in_user(request.session)
    if user is None:
        return RedirectResponse(page[1], status_code=303, headers={"Cache-Control": "no-store"})
    response = bridge.render(
        request,
        "site_logout.html",
        reload_with={"return_to": page[1]},
        user=user,
        site=page[0],
        back=page[1],
        action="/logout?" + urlencode({"return_to": page[1]}),
    )
    # The form's redirects go on to the IdP's logout and back to the site: no form-action.
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; base-uri 'none'; "
        "frame-ancestors 'none'"
    )
    return response


async def backchannel_logout(request: Request) -> Response:
    """OpenID Connect Back-Channel Logout 1.0: the IdP says a session ended (spec 2.5-2.8).

    Called by the IdP, not a browser: no cookie, no origin check. A token that fails
    validation is a 400 with an error body; an IdP or store outage answers 502/503, so
    that an IdP that retries delivers it later.
    """
    bridge = _bridge(request)
    name = request.path_params["provider"]
    try:
        provider = bridge.providers.get(name)
        if provider is None:
            raise LogoutTokenInvalid(f"no provider named {name[:40]!r}")
        compact = await _logout_token_of(request)
        meta = await provider.metadata()
        try:
            verified = await provider.verify_signature(compact, meta=meta, what="logout token")
        except IdTokenInvalid as exc:
            raise LogoutTokenInvalid(exc.detail) from None
        now, leeway = time.time(), provider.settings.leeway
        token = logout_token.validate(
            verified.header,
            verified.claims,
            issuers=provider.accepted_issuers,
            client_id=provider.client_id,
            algorithms=meta.algorithms,
            now=now,
            leeway=leeway,
        )
        if not await bridge.spent.spend(
            "jti", f"{provider.name}\n{token.jti}", token.replay_window(now, leeway)
        ):
            raise LogoutTokenInvalid("the jti was used before (a replayed logout token)")
    except LogoutTokenInvalid as exc:
        bridge.metrics.error("invalid_request")
        label = name if name in bridge.providers else OTHER
        bridge.metrics.backchannel_logouts.labels(label, "invalid_request").inc()
        log.warning("back-channel logout refused for %s: %s", name[:40], exc)
        return JSONResponse(
            {"error": "invalid_request", "error_description": str(exc)},
            status_code=400,
            headers={"Cache-Control": "no-store"},
        )
    outcome = await bridge.end_sessions(provider.name, sub=token.sub, sid=token.sid)
    bridge.metrics.backchannel_logouts.labels(provider.name, "ok").inc()
    log.info("back-channel logout from %s: %s", provider.name, outcome)
    return Response(status_code=200, headers={"Cache-Control": "no-store"})


async def _logout_token_of(request: Request) -> str:
    """The one ``logout_token`` of a form-encoded body of reasonable size."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise LogoutTokenInvalid("the body is not application/x-www-form-urlencoded")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_LOGOUT_BODY:
            raise LogoutTokenInvalid("the body is too large")
    try:
        form = parse_qs(body.decode("ascii"), strict_parsing=bool(body), max_num_fields=20)
    except (UnicodeDecodeError, ValueError):
        raise LogoutTokenInvalid("the body is not a form") from None
    values = form.get("logout_token", [])
    if len(values) != 1 or not values[0]:
        raise LogoutTokenInvalid("the body needs exactly one logout_token")
    return values[0]


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    bridge = _bridge(request)
    results = await asyncio.gather(*(p.status() for p in bridge.providers.values()))
    report = {
        p.name: {"ready": s.ready, "detail": s.detail, **s.extra}
        for p, s in zip(bridge.providers.values(), results, strict=True)
    }
    store = await bridge.redis.status() if bridge.redis else StoreStatus(True, "ready")
    ready = all(s.ready for s in results) and store.ready
    body = {
        "status": "ready" if ready else "not_ready",
        "providers": report,
        "store": {
            "sessions": bridge.settings.session.store,
            "shared": "redis" if bridge.redis else "memory",
            "ready": store.ready,
            "detail": store.detail,
        },
    }
    return JSONResponse(
        body,
        status_code=200 if ready else 503,
        headers={"Cache-Control": "no-store"},
    )


async def metrics(request: Request) -> Response:
    return Response(_bridge(request).metrics.render(), media_type=CONTENT_TYPE_LATEST)


async def brand_css(request: Request) -> Response:
    css = _bridge(request).branding.stylesheet()
    return Response(css, media_type="text/css", headers={"Cache-Control": "max-age=300"})


async def brand_logo(request: Request) -> Response:
    logo = _bridge(request).logo_file
    assert logo is not None
    return FileResponse(logo, headers={"Cache-Control": "max-age=300"})


# --- errors ------------------------------------------------------------------------


def _wants_json(request: Request) -> bool:
    return (
        request.url.path in ("/auth", "/healthz", "/readyz")
        or request.url.path.startswith("/backchannel-logout/")
        or "application/json" in request.headers.get("accept", "").split(",")[0]
    )


async def bridge_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, BridgeError)
    bridge = _bridge(request)
    bridge.metrics.error(exc.code)
    if getattr(request.state, "logged_error", None) is exc:
        pass  # the login line already told the operator
    elif exc.status >= 500 or isinstance(exc, IdpError | IdpTimeout | IdTokenInvalid):
        log.warning("%s: %s", exc.code, exc.detail)
    else:
        log.info("%s: %s", exc.code, exc.detail)
    if _wants_json(request):
        return JSONResponse(
            {"error": exc.code}, status_code=exc.status, headers={"Cache-Control": "no-store"}
        )
    provider = bridge.providers.get(str(request.path_params.get("provider", "")))
    retry_url = f"/login/{provider.name}" if provider and exc.retry else None
    return bridge.render(
        request,
        "error.html",
        status=exc.status,
        code=exc.code,
        title=bridge.gettext(request, exc.title, provider),
        message=bridge.gettext(request, exc.public, provider),
        idp_text=getattr(exc, "idp_text", None),
        retry_url=retry_url,
    )


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    detail = f"HTTP {exc.status_code} on {request.method} {request.url.path[:100]}"
    error: BridgeError
    if exc.status_code == 404:
        error = NotFound(detail)
    elif exc.status_code == 405:
        error = MethodNotAllowed(detail)
    else:
        error = InvalidRequest(detail)
        error.status = exc.status_code
    response = await bridge_error(request, error)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def unexpected_error(request: Request, exc: Exception) -> Response:
    """The one log record of a bug: ERROR with its traceback; ``bridge_error`` only renders.

    A BridgeError raised by the session middleware (the store is unreachable) is no bug:
    it arrives here, or wrapped in Starlette's RuntimeError when the store failed while
    the answer was being sent, and is answered as itself.
    """
    known = _bridge_error_in(exc)
    if known is not None:
        return await bridge_error(request, known)
    log.error(
        "internal_error on %s %s (%s)",
        request.method,
        request.url.path[:100],
        type(exc).__name__,
        exc_info=exc,
    )
    error = BridgeError(type(exc).__name__)
    request.state.logged_error = error
    return await bridge_error(request, error)


def _bridge_error_in(exc: BaseException) -> BridgeError | None:
    seen: BaseException | None = exc
    for _attempt in range(3):
        if seen is None or isinstance(seen, BridgeError):
            return seen
        seen = seen.__cause__
    return None


# --- the app -----------------------------------------------------------------------


def _routes(bridge: Bridge, auth: AuthEndpoint) -> list[BaseRoute]:
    routes: list[BaseRoute] = [
        # BridgeApp answers POST /auth before the router; here it completes the 405 of
        # another method, and answers the same if an app is ever built without the front.
        Route(auth.path, auth, methods=["POST"]),
        Route("/auth", auth_preflight, methods=["OPTIONS"]),
        Route("/", index, methods=["GET", "HEAD"]),
        Route("/login", chooser, methods=["GET"]),
        Route("/login/{provider}", login, methods=["GET"]),
        Route("/callback/{provider}", callback, methods=["GET"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/logout/site", site_logout, methods=["GET"]),
        Route("/embed.js", embed_js, methods=["GET", "HEAD"]),
        Route("/embed/config", embed_config, methods=["GET"]),
        Route("/backchannel-logout/{provider}", backchannel_logout, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET", "HEAD"]),
        Route("/readyz", readyz, methods=["GET", "HEAD"]),
        Route("/metrics", metrics, methods=["GET"]),
        Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    if bridge.branding.accent:
        routes.append(Route("/brand.css", brand_css, methods=["GET"]))
    if bridge.logo_file is not None:
        routes.append(Route(f"/brand/logo{bridge.logo_file.suffix.lower()}", brand_logo))
    if bridge.dev_idp is not None:
        routes.append(Mount(DEV_IDP_PATH, app=bridge.dev_idp))
    return routes


class BridgeApp(Starlette):
    """The bridge's app: Starlette, with ``POST /auth`` answered in front of its stack,
    by :class:`AuthFront`."""

    def __init__(self, *, auth_chain: ASGIApp, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._auth_chain = auth_chain

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["path"] == AuthEndpoint.path
            and scope["method"] == "POST"
        ):
            scope["app"] = self
            await self._auth_chain(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)


def create_app(
    settings: Settings,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    warm_up: bool = True,
    freeze_heap: bool = False,
) -> Starlette:
    """The ASGI app. ``transport`` lets tests route IdP calls in-process.

    ``freeze_heap``, for a server process: once started, what start-up built (modules,
    settings, templates, keys; some 90,000 objects) is moved out of the garbage collector's
    way (``gc.freeze``), so that its passes walk only what requests leave behind.
    """
    bridge = Bridge(settings, transport)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if freeze_heap:
            gc.collect()  # start-up's own garbage first: frozen, it would never be freed
            gc.freeze()
        task = asyncio.create_task(bridge.warm_up()) if warm_up else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await bridge.aclose()

    edge: dict[str, Any] = {
        "https": settings.server.is_https,
        "trusted_proxies": settings.server.trusted_proxies,
        "on_error": unexpected_error,
    }
    session: dict[str, Any] = {
        "settings": settings.session,
        "https_only": settings.https_only,
        "store": bridge.session_store,
    }
    auth = AuthEndpoint(bridge)
    app = BridgeApp(
        auth_chain=AuthFront(
            EdgeMiddleware(auth, **edge), SessionMiddleware(auth, **session), auth
        ),
        routes=_routes(bridge, auth),
        middleware=[Middleware(EdgeMiddleware, **edge), Middleware(SessionMiddleware, **session)],
        exception_handlers={
            BridgeError: bridge_error,
            HTTPException: http_error,
        },
        lifespan=lifespan,
    )
    # A slash redirect would be built from the Host header; every URL comes from public_url.
    app.router.redirect_slashes = False
    app.state.bridge = bridge
    return app


__all__ = ["Bridge", "create_app", "safe_next"]
