"""Time for the discovery and key caches that a test moves forward instead of sleeping."""

from __future__ import annotations

import time

from starlette.testclient import TestClient

from bridge.oidc import Provider


class FakeClock:
    """Monotonic seconds: the real clock plus however far the test has moved it.

    Built on the real clock, so it can be installed on caches that already
    hold a copy loaded with the real one.
    """

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


def install(providers: dict[str, Provider] | TestClient, clock: FakeClock) -> FakeClock:
    """Make every provider's discovery and JWKS cache (of an app, or a dict) read ``clock``."""
    if isinstance(providers, TestClient):
        providers = providers.app.state.bridge.providers  # type: ignore[attr-defined]
    for provider in providers.values():
        provider.discovery.clock = provider.jwks.clock = clock
    return clock
