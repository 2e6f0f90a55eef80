"""The chat on other websites: ``/embed.js``, its per-site configuration, and the rules for the
pages of those sites that a sign-in may return to.

A sign-in started from a site (popup or redirect) ends on a page of that site, with a one-time
handle in the URL fragment; the site's copy of ``embed.js`` redeems it with ``POST /auth``
together with the verifier only it holds (the handle alone is worth nothing). No token is ever
put in a URL or in a page another origin could read.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import Response

from bridge.pages import STATIC_DIR
from bridge.responses import JSONResponse
from bridge.settings import Settings

#: It rides in the session cookie with its flow (several may run at once): keep it short.
MAX_RETURN_TO = 512
#: How long a sign-in's result waits for the site's script, and a logout's way back.
SIGN_IN_HANDLE_TTL = 120.0
LOGOUT_HANDLE_TTL = 600.0
#: The origin logout handles are bound to: redeemed by the bridge itself, on ``GET /``.
LOGOUT_ORIGIN = "bridge:logout"
CHALLENGE = re.compile(r"^[A-Za-z0-9_-]{43}$")
VERIFIER = re.compile(r"^[A-Za-z0-9._~-]{43,128}$")
FRAGMENT_PREFIX = "tdb_"

Mode = Literal["popup", "redirect"]


@dataclass(frozen=True)
class SiteReturn:
    """Where a sign-in started on a site ends: a page of that site."""

    origin: str
    url: str
    mode: Mode
    challenge: str


def site_page(settings: Settings, value: str | None) -> tuple[str, str] | None:
    """(origin, url) when ``value`` is an absolute URL on exactly one of [sites]; else None.

    The URL must begin with the site's origin followed by ``/``: whatever a parser makes of
    the rest, the browser stays on that host. Its fragment is dropped (the bridge writes its own).
    """
    if not value or len(value) > MAX_RETURN_TO:
        return None
    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in value) or "\\" in value:
        return None
    for origin in settings.sites:
        if value.startswith(origin + "/"):
            url = value.split("#", 1)[0]
            parts = urlsplit(url)
            if f"{parts.scheme}://{parts.netloc}" != origin:
                return None
            return origin, url
    return None


def site_return(
    settings: Settings,
    return_to: str | None,
    mode: str | None,
    challenge: str | None,
) -> SiteReturn | None:
    """The validated return of a sign-in started on a site, or None when any part is off."""
    page = site_page(settings, return_to)
    if page is None or mode not in ("popup", "redirect"):
        return None
    if challenge is None or not CHALLENGE.fullmatch(challenge):
        return None
    origin, url = page
    return SiteReturn(origin, url, "popup" if mode == "popup" else "redirect", challenge)


def challenge_of(verifier: str) -> str:
    """PKCE's S256 transform: what the site sent at the start, from what it keeps."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def verifier_matches(verifier: object, challenge: object) -> bool:
    if not isinstance(verifier, str) or not VERIFIER.fullmatch(verifier):
        return False
    if not isinstance(challenge, str):
        return False
    return hmac.compare_digest(challenge_of(verifier), challenge)


def landing_url(url: str, mode: str, **fields: str) -> str:
    """The site page with the result in its fragment: browsers never send a fragment anywhere."""
    data = {"mode": mode, **fields}
    return f"{url}#" + urlencode({f"{FRAGMENT_PREFIX}{k}": v for k, v in data.items()})


# --- the script --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Script:
    body: bytes
    etag: str
    version: str


@functools.cache
def script() -> Script:
    body = (STATIC_DIR / "embed.js").read_bytes()
    version = hashlib.sha256(body).hexdigest()[:16]
    return Script(body, f'"{version}"', version)


def embed_js(request: Request) -> Response:
    """The drop-in script: one file for every site, revalidated by its ETag.

    ``?v=<version>`` (the version the README's snippet may pin) is cached for a year.
    """
    current = script()
    headers = {
        "ETag": current.etag,
        "Cache-Control": "public, max-age=300, must-revalidate",
        # Loadable by a site that isolates itself (COEP): a script, no credentials, no secrets.
        "Cross-Origin-Resource-Policy": "cross-origin",
    }
    if request.query_params.get("v") == current.version:
        headers["Cache-Control"] = "public, max-age=31536000, immutable"
    match = request.headers.get("if-none-match", "")
    if current.etag in [tag.strip() for tag in match.split(",")]:
        return Response(status_code=304, headers=headers)
    return Response(current.body, media_type="text/javascript", headers=headers)


def site_config(
    settings: Settings, origin: str, display_names: dict[str, str], *, language: str
) -> dict[str, Any]:
    """What the script needs to load the widget and offer sign-in on this site."""
    site = settings.sites[origin]
    return {
        "version": script().version,
        "lang": language,
        "widgetUrl": settings.tiledesk.widget_url,
        "tiledeskSettings": {
            "lang": language,  # unless the operator set the widget's language
            **settings.tiledesk.widget,
            "projectid": settings.tiledesk.project_id,
            "autoStart": False,
        },
        "signIn": site.sign_in,
        "providers": [
            {"name": name, "displayName": display_names[name]}
            for name in settings.site_providers(origin)
        ],
    }


def config_response(
    body: dict[str, Any] | None, origin: str | None, *, language: str | None = None
) -> Response:
    if body is None or origin is None:
        return JSONResponse(
            {"error": "cross_site_refused"}, status_code=403, headers={"Cache-Control": "no-store"}
        )
    headers = {"Cache-Control": "no-store", **cors_headers(origin)}
    if language is not None:
        headers["Vary"] = "Origin, Accept-Language"
        headers["Content-Language"] = language
    return JSONResponse(body, headers=headers)


def cors_headers(origin: str | None) -> dict[str, str]:
    if origin is None:
        return {}
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Credentials": "true",
        "Vary": "Origin",
    }


__all__ = [
    "LOGOUT_HANDLE_TTL",
    "LOGOUT_ORIGIN",
    "SIGN_IN_HANDLE_TTL",
    "SiteReturn",
    "challenge_of",
    "config_response",
    "cors_headers",
    "embed_js",
    "landing_url",
    "script",
    "site_config",
    "site_page",
    "site_return",
    "verifier_matches",
]
