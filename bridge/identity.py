"""Pure: verified claims -> access decision -> Tiledesk user.

No I/O here: the claim mapping and the access policy are plain functions on
plain data, so ``tiledesk-bridge mint`` and the tests run them without an IdP.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bridge.providers import PRESETS
from bridge.settings import AccessSettings, ClaimSpec, ProviderSettings

SAFE_ID = re.compile(r"^[A-Za-z0-9_|:@-]{1,128}$")
PLACEHOLDER = re.compile(r"\{([^{}]+)\}")
MAX_TEXT = 256
MAX_LIST = 50
MAX_ATTRIBUTES_JSON = 1536

Claims = Mapping[str, Any]


@dataclass(frozen=True)
class TiledeskUser:
    """Exactly the fields a Tiledesk custom token carries about a person."""

    id: str
    firstname: str = ""
    lastname: str = ""
    email: str = ""
    attributes: dict[str, Any] = field(default_factory=dict)

    @property
    def display_name(self) -> str:
        return " ".join(p for p in (self.firstname, self.lastname) if p) or self.email or "you"

    def as_dict(self) -> dict[str, Any]:
        return {
            "_id": self.id,
            "firstname": self.firstname,
            "lastname": self.lastname,
            "email": self.email,
            "attributes": self.attributes,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TiledeskUser:
        # Positional, in the fields' order: every POST /auth builds one.
        return cls(
            str(data["_id"]),
            str(data.get("firstname", "")),
            str(data.get("lastname", "")),
            str(data.get("email", "")),
            dict(data.get("attributes") or {}),
        )


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str


# --- claim paths and templates -----------------------------------------------


def claim_value(claims: Claims, path: str) -> Any:
    """Look up ``a.b.c``; a key that itself holds dots (Auth0's URL-namespaced claims) wins."""
    if path in claims:
        return claims[path]
    for i in range(len(path) - 1, 0, -1):
        if path[i] != ".":
            continue
        head = path[:i]
        if head in claims and isinstance(claims[head], Mapping):
            return claim_value(claims[head], path[i + 1 :])
    return None


def _finite(value: Any) -> bool:
    """NaN and Infinity parse from JSON in Python but are not JSON: count them as absent."""
    return not isinstance(value, float) or math.isfinite(value)


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float) and _finite(value):
        return str(value).strip()
    return ""


def _render(claims: Claims, spec: str) -> Any:
    if PLACEHOLDER.search(spec) is None:
        return claim_value(claims, spec)
    missing = False

    def sub(match: re.Match[str]) -> str:
        nonlocal missing
        text = _scalar_text(claim_value(claims, match.group(1).strip()))
        missing = missing or not text
        return text

    rendered = PLACEHOLDER.sub(sub, spec)
    return "" if missing else rendered


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {} or not _finite(value)


def resolve(claims: Claims, spec: ClaimSpec) -> Any:
    """A path, a ``{claim}`` template, or a list of those where the first non-empty wins."""
    for one in [spec] if isinstance(spec, str) else spec:
        value = _render(claims, one)
        if not _empty(value):
            return value
    return None


def _text(value: Any) -> str:
    return _scalar_text(value)[:MAX_TEXT]


def _attribute(value: Any) -> Any:
    """Keep attribute values small and JSON-plain: text, numbers, booleans, lists of those."""
    if isinstance(value, bool | int | float):
        return value if _finite(value) else None
    if isinstance(value, str):
        return value[:MAX_TEXT]
    if isinstance(value, list | tuple):
        return [_text(v) for v in value[:MAX_LIST] if _text(v)]
    return None


# --- access policy ------------------------------------------------------------


def _truthy(value: Any) -> bool:
    # Some IdPs (older Cognito, some SAML bridges) send "true" as a string.
    return value is True or (isinstance(value, str) and value.lower() == "true")


def _groups(claims: Claims, path: str) -> list[str]:
    value = claim_value(claims, path)
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [str(v) for v in value if isinstance(v, str | int)]
    return []


def _domain_allowed(email: str, domains: tuple[str, ...]) -> bool:
    domain = email.rsplit("@", 1)[-1].lower()
    for allowed in domains:
        if allowed.startswith("."):
            if domain.endswith(allowed):
                return True
        elif domain == allowed:
            return True
    return False


def email_verified_claim(provider: ProviderSettings) -> str:
    access = provider.access
    if "email_verified_claim" in access.model_fields_set:
        return access.email_verified_claim
    return PRESETS[provider.preset].email_verified_claim


def requires_verified_email(provider: ProviderSettings) -> bool:
    access = provider.access
    if access.require_email_verified is not None:
        return access.require_email_verified
    return bool(provider.claims.email) or bool(access.email_domains)


def decide(provider: ProviderSettings, claims: Claims) -> Decision:
    """Apply ``[providers.NAME.access]`` to verified claims."""
    access: AccessSettings = provider.access
    email = _text(resolve(claims, provider.claims.email)) if provider.claims.email else ""
    if email and requires_verified_email(provider):
        verified_claim = email_verified_claim(provider)
        if not _truthy(claim_value(claims, verified_claim)):
            return Decision(
                False, f"the email is not verified by the IdP ({verified_claim} is not true)"
            )
    if access.email_domains:
        if not email or "@" not in email:
            return Decision(False, "email_domains is set but the IdP sent no email")
        if not _domain_allowed(email, access.email_domains):
            return Decision(False, "the email's domain is not in email_domains")
    if access.hosted_domain is not None and claim_value(claims, "hd") != access.hosted_domain:
        return Decision(False, "the hd (hosted domain) claim does not match hosted_domain")
    if access.allowed_groups:
        groups = _groups(claims, access.groups_claim)
        if not set(groups) & set(access.allowed_groups):
            return Decision(False, f"no group in {access.groups_claim} is in allowed_groups")
    return Decision(True, "allowed")


# --- which claims the policy and the mapping read ------------------------------------------


def _spec_paths(spec: ClaimSpec) -> set[str]:
    """Every claim path ``resolve`` may read for this spec (``_render`` reads each placeholder)."""
    paths: set[str] = set()
    for one in [spec] if isinstance(spec, str) else spec:
        placeholders = PLACEHOLDER.findall(one)
        if placeholders:
            paths.update(name.strip() for name in placeholders)
        else:
            paths.add(one)
    return paths


def claims_read(provider: ProviderSettings) -> frozenset[str]:
    """Every claim path ``decide`` and ``map_user`` can read for this provider, from settings.

    Kept beside them so that a new read in either lands here too; a property test holds
    the three together.
    """
    mapping, access = provider.claims, provider.access
    paths = {provider.subject_claim}
    for spec in (mapping.firstname, mapping.lastname, mapping.email):
        if spec:  # an empty spec maps nothing and reads nothing
            paths |= _spec_paths(spec)
    for spec in mapping.attributes.values():
        paths |= _spec_paths(spec)
    if mapping.email and requires_verified_email(provider):
        paths.add(email_verified_claim(provider))
    if access.hosted_domain is not None:
        paths.add("hd")
    if access.allowed_groups:
        paths.add(access.groups_claim)
    return frozenset(paths)


def userinfo_needed(provider: ProviderSettings, id_claims: Claims) -> bool:
    """Whether to ask userinfo: always with ``true``, never with ``false``, and with ``"auto"``
    only when its answer could change the outcome.

    ID-token claims win over userinfo claims, so userinfo matters only through a path
    that is not a literal key of the ID token; a dotted path counts as missing unless
    the dotted key itself is there, since ``claim_value`` prefers the literal key.
    """
    if isinstance(provider.userinfo, bool):
        return provider.userinfo
    return any(path not in id_claims for path in claims_read(provider))


# --- the Tiledesk user -----------------------------------------------------------


#: Separates the provider name from the digest; no provider name and no plain form has it there.
DIGEST_SEPARATOR = "|"
DIGEST_HEX_CHARS = 40


def tiledesk_user_id(project_id: str, provider_name: str, issuer: str, subject: str) -> str:
    """``<project>_<provider>_<sub>`` where that is safe, else ``<project>_<provider>|<digest>``.

    Injective: a plain id has ``_`` right after the (``|``-free) provider name, a digest id has
    ``|`` there and no ``_`` after it, and the digest input ends the issuer at its first newline.
    """
    candidate = f"{project_id}_{provider_name}_{subject}"
    if SAFE_ID.fullmatch(candidate):
        return candidate
    if "\n" in issuer:
        raise ValueError("an issuer never holds a newline; the digest input relies on it")
    # surrogatepass: a lone surrogate in a JSON string is a subject too, not a crash.
    data = f"{issuer}\n{subject}".encode("utf-8", "surrogatepass")
    digest = hashlib.sha256(data).hexdigest()[:DIGEST_HEX_CHARS]
    return f"{project_id}_{provider_name}{DIGEST_SEPARATOR}{digest}"


def subject_of(provider: ProviderSettings, claims: Claims) -> str:
    subject = claim_value(claims, provider.subject_claim)
    if not isinstance(subject, str) or not subject:
        raise ValueError(
            f"the verified claims have no {provider.subject_claim!r} to identify the user"
        )
    return subject


def map_user(
    *,
    project_id: str,
    provider_name: str,
    provider: ProviderSettings,
    issuer: str,
    claims: Claims,
) -> TiledeskUser:
    """Build the Tiledesk user; reserved claims cannot come out because only fixed fields exist."""
    mapping = provider.claims
    attributes: dict[str, Any] = {}
    for key, spec in mapping.attributes.items():
        value = _attribute(resolve(claims, spec))
        if not _empty(value):
            attributes[key] = value
    attributes["idp"] = provider_name
    while len(json.dumps(attributes)) > MAX_ATTRIBUTES_JSON and len(attributes) > 1:
        # Drop the largest operator attribute first; the user still signs in.
        largest = max(
            (k for k in attributes if k != "idp"), key=lambda k: len(json.dumps(attributes[k]))
        )
        del attributes[largest]
    return TiledeskUser(
        id=tiledesk_user_id(project_id, provider_name, issuer, subject_of(provider, claims)),
        firstname=_text(resolve(claims, mapping.firstname)) if mapping.firstname else "",
        lastname=_text(resolve(claims, mapping.lastname)) if mapping.lastname else "",
        email=_text(resolve(claims, mapping.email)) if mapping.email else "",
        attributes=attributes,
    )
