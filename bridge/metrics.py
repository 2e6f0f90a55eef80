"""Prometheus metrics: one registry per app, labels bounded (provider, outcome code, endpoint).

No user ids in labels: cardinality stays the number of providers times codes.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]


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
            "JWKS fetches by provider and reason (initial, expired, unknown_kid).",
            ["provider", "reason"],
            registry=self.registry,
        )
        self.errors = Counter(
            "bridge_errors_total",
            "Error pages and error answers by code.",
            ["code"],
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
