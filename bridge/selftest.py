"""``tiledesk-bridge check --online``: each IdP's discovery and keys, and Tiledesk's verdict.

The IdPs are reached through the very ``Provider`` objects the app builds, so a
pass here means the app's own discovery and key loading will pass. Client
secrets and redirect URIs are checked by an IdP only during a real sign-in.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx

from bridge import tiledesk
from bridge.errors import IdpError, IdpTimeout
from bridge.identity import TiledeskUser, claims_read
from bridge.oidc import ASYMMETRIC_ALGS, KTY_FOR_ALG, Metadata, Provider, loggable_url
from bridge.providers import discovery_url
from bridge.settings import Settings

#: Seconds Tiledesk's API gets to answer the self-test sign-in.
TILEDESK_TIMEOUT = 10.0
#: The self-test token only has to live through one request.
SELFTEST_TTL = 120
REQUIRED_ENDPOINTS = ("authorization_endpoint", "token_endpoint", "jwks_uri")
ISSUER_PARAMS = {
    "keycloak": "base_url and realm (Keycloak before version 17 needs '/auth' in base_url)",
    "google": "nothing: the google preset's issuer is fixed",
    "entra": "tenant (the Directory (tenant) ID GUID)",
    "okta": "domain and authorization_server, or issuer",
    "auth0": "domain, or issuer (Auth0's issuer ends with a slash)",
    "generic": "issuer, spelt exactly as the discovery document spells it",
}


class Report:
    """Plain lines, ``ok``/``warn``/``FAIL`` first; any FAIL fails the check."""

    def __init__(self, out: Callable[[str], None] = print) -> None:
        self.out = out
        self.failures = 0

    def _line(self, status: str, subject: str, text: str) -> None:
        self.out(f"{status:<4} {subject}: {text}")

    def ok(self, subject: str, text: str) -> None:
        self._line("ok", subject, text)

    def warn(self, subject: str, text: str) -> None:
        self._line("warn", subject, text)

    def fail(self, subject: str, text: str) -> None:
        self.failures += 1
        self._line("FAIL", subject, text)


def run_online_checks(
    settings: Settings,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    out: Callable[[str], None] = print,
) -> bool:
    """Check every provider and Tiledesk; print one line per finding; True when nothing failed."""
    report = Report(out)
    asyncio.run(_run(settings, transport, report))
    if report.failures:
        out(f"online checks: {report.failures} failed")
    else:
        out("online checks: all passed")
    return report.failures == 0


async def _run(
    settings: Settings, transport: httpx.AsyncBaseTransport | None, report: Report
) -> None:
    # Imported here: the app's module is only needed once the checks go online.
    from bridge.web import Bridge, outbound_transport

    bridge = Bridge(settings, transport)
    try:
        for provider in bridge.providers.values():
            await check_provider(provider, report)
        await check_tiledesk(settings, transport or outbound_transport(settings), report)
    finally:
        await bridge.aclose()


async def check_provider(provider: Provider, report: Report) -> None:
    name, preset = provider.name, provider.settings.preset
    if preset == "dev":
        report.ok(name, "dev preset: the development IdP is served in-process; checked in-process")
    url = discovery_url(provider.issuer)
    try:
        doc = await provider.discovery_document()
    except (IdpError, IdpTimeout) as exc:
        report.fail(name, f"discovery {url}: {_detail(provider, exc, url)}")
        return
    if not isinstance(doc, dict):
        report.fail(name, f"discovery {url}: the document is not a JSON object")
        return
    report.ok(name, f"discovery {url} loaded")
    failures = report.failures
    _check_issuer(provider, doc, report)
    _check_endpoints(provider, doc, report)
    _check_algorithms(provider, doc, report)
    try:
        meta = Metadata.parse(doc, provider.issuer)
    except IdpError as exc:
        if report.failures == failures:
            report.fail(name, exc.detail)
        report.warn(name, "keys not checked: the bridge cannot use this discovery document")
        return
    if report.failures != failures:
        return
    await _check_keys(provider, meta, report)


def _detail(provider: Provider, exc: IdpError | IdpTimeout, url: str) -> str:
    """The failure without what the report line already says: the provider and the URL."""
    return exc.detail.removeprefix(f"{provider.name}: ").replace(f" {loggable_url(url)}", "")


def _check_issuer(provider: Provider, doc: dict[str, Any], report: Report) -> None:
    issuer = doc.get("issuer")
    if issuer == provider.issuer:
        report.ok(provider.name, f"issuer {issuer} matches the settings")
        return
    report.fail(
        provider.name,
        f"issuer mismatch: the discovery document says {issuer!r}, the settings give "
        f"{provider.issuer!r}: check {ISSUER_PARAMS.get(provider.settings.preset, 'issuer')}",
    )


def _check_endpoints(provider: Provider, doc: dict[str, Any], report: Report) -> None:
    name = provider.name
    missing = [key for key in REQUIRED_ENDPOINTS if not isinstance(doc.get(key), str)]
    if missing:
        report.fail(name, f"the discovery document lacks {', '.join(missing)}")
    else:
        report.ok(name, "authorization, token and jwks_uri endpoints are published")
    if not isinstance(doc.get("userinfo_endpoint"), str):
        report.warn(name, "no userinfo_endpoint: only the ID token's claims can be mapped")
    elif provider.settings.userinfo is False:
        report.ok(name, "userinfo_endpoint published, not used (userinfo = false)")
    elif provider.settings.userinfo is True:
        report.ok(name, "userinfo_endpoint published, called on every sign-in (userinfo = true)")
    else:
        paths = ", ".join(sorted(claims_read(provider.settings)))
        report.ok(
            name,
            "userinfo_endpoint published; called only when the ID token lacks a claim the "
            f"mapping or access rules read ({paths})",
        )
    if isinstance(doc.get("end_session_endpoint"), str):
        report.ok(
            name,
            "end_session_endpoint published: signing out also ends the IdP session "
            "(register the post-logout redirect URI)",
        )
    else:
        report.warn(
            name, "no end_session_endpoint: signing out ends the bridge session, not the IdP's"
        )


def _check_algorithms(provider: Provider, doc: dict[str, Any], report: Report) -> None:
    advertised = doc.get("id_token_signing_alg_values_supported")
    if advertised is None:
        report.warn(
            provider.name, "id_token_signing_alg_values_supported is missing: RS256 is assumed"
        )
        return
    if not isinstance(advertised, list):
        report.fail(provider.name, "id_token_signing_alg_values_supported is not a list")
        return
    names = [str(a) for a in advertised]
    accepted = [a for a in names if a in ASYMMETRIC_ALGS]
    ignored = [a for a in names if a not in ASYMMETRIC_ALGS]
    if not accepted:
        report.fail(
            provider.name,
            f"ID-token algorithms advertised: {', '.join(names) or 'none'}; the bridge "
            "accepts only asymmetric ones (RS*, PS*, ES*, EdDSA)",
        )
        return
    text = f"ID-token algorithms advertised: {', '.join(names)}; accepted: {', '.join(accepted)}"
    if ignored:
        text += f"; refused: {', '.join(ignored)}"
    report.ok(provider.name, text)


async def _check_keys(provider: Provider, meta: Metadata, report: Report) -> None:
    try:
        keys = await provider.keys(meta)
    except (IdpError, IdpTimeout) as exc:
        report.fail(provider.name, f"JWKS {meta.jwks_uri}: {_detail(provider, exc, meta.jwks_uri)}")
        return
    usable_types = {KTY_FOR_ALG.get(alg[:2], "") for alg in meta.algorithms}
    fitting = [k for k in keys.keys if k.key_type in usable_types]
    kids = ", ".join(str(k.kid) for k in keys.keys if k.kid) or "no kid"
    if not fitting:
        report.fail(
            provider.name,
            f"JWKS {meta.jwks_uri}: {len(keys.keys)} key(s) ({kids}), none of a type the "
            f"advertised algorithms use ({', '.join(meta.algorithms)})",
        )
        return
    report.ok(provider.name, f"JWKS {meta.jwks_uri}: {len(keys.keys)} signature key(s) ({kids})")


def selftest_user(project_id: str) -> TiledeskUser:
    """A dedicated, recognisable user: the check creates (or finds) it in the project."""
    return TiledeskUser(
        id=f"{project_id}_bridge-selftest",
        firstname="Bridge self-test",
        attributes={"idp": "bridge-selftest"},
    )


async def check_tiledesk(
    settings: Settings, transport: httpx.AsyncBaseTransport | None, report: Report
) -> None:
    conf = settings.tiledesk
    minted = tiledesk.mint(
        selftest_user(conf.project_id),
        project_id=conf.project_id,
        secret=conf.secret.get_secret_value(),
        ttl=SELFTEST_TTL,
    )
    url = f"{conf.api_url}/auth/signinWithCustomToken"
    async with httpx.AsyncClient(
        transport=transport, timeout=TILEDESK_TIMEOUT, trust_env=False, follow_redirects=False
    ) as client:
        try:
            response = await client.post(url, headers={"Authorization": minted.token})
        except httpx.HTTPError as exc:
            report.fail("tiledesk", unreachable(exc, url, settings.server.outbound_proxy))
            return
    status = response.status_code
    if status == 401:
        report.fail(
            "tiledesk",
            f"Tiledesk refused the token: the project id ({conf.project_id}) or the secret "
            "is wrong (compare [tiledesk] with the project's Settings > Auth)",
        )
        return
    if status == 407:
        report.fail(
            "tiledesk",
            f"the outbound proxy {_shown(settings.server.outbound_proxy)} asks for credentials "
            "(HTTP 407): give them in [server] outbound_proxy, written as env: or file:",
        )
        return
    if status == 404:
        report.fail(
            "tiledesk",
            f"{url} answered HTTP 404: is [tiledesk].api_url the API base "
            "(e.g. https://api.tiledesk.com/v3)?",
        )
        return
    if status != 200:
        via = (
            f" (possibly the outbound proxy {_shown(settings.server.outbound_proxy)}, not Tiledesk)"
            if settings.server.outbound_proxy and status in (502, 503, 504)
            else ""
        )
        report.fail("tiledesk", f"{url} answered HTTP {status}{via}, expected 200 or 401")
        return
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or body.get("success") is not True:
        report.fail("tiledesk", f"{url} answered 200 without success: true; is api_url right?")
        return
    report.ok(
        "tiledesk",
        f"Tiledesk accepted a token for project {conf.project_id}: project id and secret match",
    )


# --- why a host cannot be reached ----------------------------------------------------------


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception and its causes: httpx wraps httpcore, which wraps the socket's error."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _shown(proxy: str | None) -> str:
    """The proxy as ``scheme://host:port``: credentials in its URL never reach the output."""
    if not proxy:
        return ""
    parts = urlsplit(proxy)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}"


def unreachable(exc: httpx.HTTPError, url: str, proxy: str | None) -> str:
    """Name the failing layer (proxy, DNS, TCP, TLS, time) and what to check for it.

    An operator meeting "cannot reach" cannot tell a typo in ``api_url`` from a
    firewall or a missing ``[server] outbound_proxy``; each layer has its own fix.
    """
    host = urlsplit(url).hostname or url
    via = _shown(proxy)
    # Through a proxy the bridge resolves and connects to the proxy only; TLS is end to end.
    target = f"the outbound proxy {via}" if proxy else host
    causes = list(_chain(exc))
    if any(isinstance(c, httpx.ProxyError) for c in causes):
        what = f"the outbound proxy {via} refused to open a tunnel to {host} ({exc})"
        advice = f"allow {host} on the proxy, or fix [server] outbound_proxy"
    elif any(isinstance(c, socket.gaierror) for c in causes):
        what = f"DNS: the name of {target} does not resolve from this machine"
        advice = (
            "check [server] outbound_proxy"
            if proxy
            else "check [tiledesk].api_url and this machine's DNS; without direct Internet "
            "access, set [server] outbound_proxy"
        )
    elif cert := next((c for c in causes if isinstance(c, ssl.SSLCertVerificationError)), None):
        what = f"TLS: the certificate presented for {host} is not trusted ({cert.verify_message})"
        advice = (
            "a proxy or firewall that inspects TLS presents its own certificate, which the "
            "bridge does not trust; let the proxy pass the connection to Tiledesk untouched"
        )
    elif tls := next((c for c in causes if isinstance(c, ssl.SSLError)), None):
        what = f"TLS: the handshake with {host} failed ({tls.reason or tls})"
        advice = "check that [tiledesk].api_url is https:// on an HTTPS port"
    elif isinstance(exc, httpx.ConnectTimeout):
        what = f"no connection to {target} within {TILEDESK_TIMEOUT:g}s"
        advice = _network_advice(proxy, "a firewall may be dropping the traffic")
    elif isinstance(exc, httpx.TimeoutException):
        what = f"{url} did not answer within {TILEDESK_TIMEOUT:g}s"
        advice = "Tiledesk or the network is slow; try again, then check the status of the API"
    elif any(isinstance(c, ConnectionRefusedError) for c in causes):
        what = f"the connection to {target} was refused"
        advice = _network_advice(proxy, "nothing listens on that host and port")
    elif isinstance(exc, httpx.ConnectError | httpx.NetworkError):
        what = f"cannot connect to {target} ({_os_reason(causes) or type(exc).__name__})"
        advice = _network_advice(proxy, "no route to the host")
    else:
        what = f"cannot reach {url} ({type(exc).__name__})"
        advice = "check [tiledesk].api_url"
    return f"{what}: {advice}"


def _network_advice(proxy: str | None, likely: str) -> str:
    if proxy:
        return f"{likely}; check that [server] outbound_proxy is right and lets Tiledesk through"
    return (
        f"{likely}; check [tiledesk].api_url, and if this machine reaches the Internet only "
        "through a proxy, set [server] outbound_proxy"
    )


def _os_reason(causes: list[BaseException]) -> str:
    for cause in causes:
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror
    return ""
