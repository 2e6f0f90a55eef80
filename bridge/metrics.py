"""Prometheus metrics: one registry per app, labels bounded (provider, outcome code, endpoint).

No user ids, raw paths or IdP-chosen strings in labels: cardinality stays the
number of configured providers times the known codes.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from bridge.errors import BridgeError

__all__ = ["CONTENT_TYPE_LATEST", "OTHER", "Metrics", "bounded_code"]

#: Error codes an IdP may send back on the redirect (RFC 6749 4.1.2.1, OIDC Core 3.1.2.6).
IDP_ERROR_CODES = frozenset(
    {
        "invalid_request",
        "unauthorized_client",
        "access_denied",
        "unsupported_response_type",
        "invalid_scope",
        "server_error",
        "temporarily_unavailable",
        "interaction_required",
        "login_required",
        "account_selection_required",
        "consent_required",
        "invalid_request_uri",
        "invalid_request_object",
        "request_not_supported",
        "request_uri_not_supported",
        "registration_not_supported",
    }
)
#: Label for a code outside the known set (an IdP's own error name, say).
OTHER = "other"


def _bridge_codes(cls: type[BridgeError] = BridgeError) -> set[str]:
    codes = {cls.code}
    for sub in cls.__subclasses__():
        codes |= _bridge_codes(sub)
    return codes


def bounded_code(code: str) -> str:
    """``code`` if it is one the bridge or the OAuth specs define, else ``other``."""
    known = IDP_ERROR_CODES | _bridge_codes() | {"ok", "method_not_allowed"}
    return code if code in known else OTHER


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.logins = Counter(
            "bridge_logins_total",
            "Completed login attempts by provider and outcome code.",
            ["provider", "outcome"],
            registry=self.registry,
        )
        self.auth_calls = Counter(
            "bridge_auth_requests_total",
            "POST /auth calls by outcome.",
            ["outcome"],
            registry=self.registry,
        )
        self.idp_latency = Histogram(
            "bridge_idp_request_seconds",
            "Latency of calls to the IdP by provider and endpoint.",
            ["provider", "endpoint"],
            registry=self.registry,
            buckets=(0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.jwks_refreshes = Counter(
            "bridge_jwks_refreshes_total",
            "JWKS fetches by provider and reason (initial, expired, unknown_kid, "
            "signature_mismatch).",
            ["provider", "reason"],
            registry=self.registry,
        )
        self.errors = Counter(
            "bridge_errors_total",
            "Error pages and error answers by code.",
            ["code"],
            registry=self.registry,
        )

    def login(self, provider: str, outcome: str) -> None:
        """Count a finished login; ``provider`` must be a configured name, never the URL's."""
        self.logins.labels(provider, bounded_code(outcome)).inc()

    def error(self, code: str) -> None:
        self.errors.labels(bounded_code(code)).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
