"""IdP presets: the parameters an operator knows (realm, tenant, domain) -> issuer + defaults.

Pure data and functions, so settings validation can report a missing preset
parameter by key before anything talks to the network.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
HOSTNAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9-]+)+$")
GOOGLE_ISSUER = "https://accounts.google.com"


@dataclass(frozen=True)
class IssuerParams:
    issuer: str | None = None
    base_url: str | None = None
    realm: str | None = None
    tenant: str | None = None
    domain: str | None = None
    authorization_server: str | None = None


@dataclass(frozen=True)
class Preset:
    display_name: str
    #: Other spellings of the issuer this IdP is documented to put in ``iss``.
    issuer_aliases: tuple[str, ...] = ()
    #: The claim that says the email was verified by the IdP.
    email_verified_claim: str = "email_verified"


PRESETS: dict[str, Preset] = {
    "keycloak": Preset("Keycloak"),
    "google": Preset("Google", issuer_aliases=("accounts.google.com",)),
    # Entra ID has no email_verified; xms_edov says the email's domain is verified.
    "entra": Preset("Microsoft", email_verified_claim="xms_edov"),
    "okta": Preset("Okta"),
    "auth0": Preset("Auth0"),
    "generic": Preset("Single sign-on"),
    "dev": Preset("Development identity provider"),
}


def _url(value: str, key: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ValueError(f"{key}: must be an http(s) URL without query or fragment, got {value!r}")
    return value


def _host(value: str | None, key: str, example: str) -> str:
    if not value or not HOSTNAME.fullmatch(value):
        raise ValueError(f"{key}: required, a host name like {example!r} (no scheme, no path)")
    return value


def resolve_issuer(preset: str, p: IssuerParams) -> str:
    """The exact issuer identifier the IdP will put in ``iss`` and its discovery document."""
    if preset == "keycloak":
        if p.issuer:
            return _url(p.issuer, "issuer")
        if not p.base_url:
            raise ValueError(
                "base_url: required for the keycloak preset (e.g. https://sso.acme.com)"
            )
        if not p.realm or not re.fullmatch(r"[A-Za-z0-9._-]+", p.realm):
            raise ValueError("realm: required for the keycloak preset (the realm's name)")
        return f"{_url(p.base_url, 'base_url').rstrip('/')}/realms/{p.realm}"
    if preset == "google":
        if p.issuer and p.issuer != GOOGLE_ISSUER:
            raise ValueError(f"issuer: the google preset's issuer is {GOOGLE_ISSUER}; leave it out")
        return GOOGLE_ISSUER
    if preset == "entra":
        if not p.tenant or not GUID.fullmatch(p.tenant):
            raise ValueError(
                "tenant: required for the entra preset: the Directory (tenant) ID, a GUID; "
                "a domain name's discovery document gives the issuer with the tenant's GUID, "
                "so an issuer built from the name never matches (that document shows the "
                "GUID); 'common' and 'organizations' publish a '{tenantid}' placeholder issuer "
                "that no ID token matches"
            )
        return f"https://login.microsoftonline.com/{p.tenant.lower()}/v2.0"
    if preset == "okta":
        if p.issuer:
            return _url(p.issuer, "issuer").rstrip("/")
        domain = _host(p.domain, "domain", "acme.okta.com")
        server = p.authorization_server or "default"
        if not re.fullmatch(r"[A-Za-z0-9]+", server):
            raise ValueError("authorization_server: an Okta authorization server id like 'default'")
        return f"https://{domain}/oauth2/{server}"
    if preset == "auth0":
        if p.issuer:
            return _url(p.issuer, "issuer")
        # Auth0's issuer keeps its trailing slash, and ID tokens carry it.
        return f"https://{_host(p.domain, 'domain', 'acme.eu.auth0.com')}/"
    if preset == "generic":
        if not p.issuer:
            raise ValueError("issuer: required for the generic preset")
        return _url(p.issuer, "issuer")
    raise ValueError(f"preset: unknown preset {preset!r}")


def discovery_url(issuer: str) -> str:
    return f"{issuer.rstrip('/')}/.well-known/openid-configuration"
