"""[server] outbound_proxy: IdP calls go through the operator's egress proxy."""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest

from bridge.settings import SettingsError, parse_settings
from bridge.web import Bridge
from tests.conftest import base_settings

ISSUER = "http://idp.proxied.test"


class _Proxy(http.server.BaseHTTPRequestHandler):
    """A forward proxy that answers for one made-up host, which DNS would never find."""

    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.seen.append(self.path)
        if self.path == f"{ISSUER}/.well-known/openid-configuration":
            body = json.dumps(
                {
                    "issuer": ISSUER,
                    "authorization_endpoint": f"{ISSUER}/authorize",
                    "token_endpoint": f"{ISSUER}/token",
                    "jwks_uri": f"{ISSUER}/jwks",
                }
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self.send_error(404)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def proxy() -> Iterator[str]:
    _Proxy.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Proxy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_idp_calls_go_through_the_outbound_proxy(proxy: str) -> None:
    data = base_settings()
    data["server"]["outbound_proxy"] = proxy
    data["providers"] = {"corp": {**data["providers"]["generic"], "issuer": ISSUER}}

    async def load() -> str:
        bridge = Bridge(parse_settings(data))
        try:
            return (await bridge.providers["corp"].metadata()).issuer
        finally:
            await bridge.aclose()

    assert asyncio.run(load()) == ISSUER
    assert _Proxy.seen == [f"{ISSUER}/.well-known/openid-configuration"]


@pytest.mark.parametrize("value", ["socks://x", "proxy.acme.com:3128", "http://proxy/path"])
def test_outbound_proxy_must_be_a_proxy_url(value: str) -> None:
    data = base_settings()
    data["server"]["outbound_proxy"] = value
    with pytest.raises(SettingsError) as caught:
        parse_settings(data)
    assert caught.value.problems[0].startswith("server.outbound_proxy: must be a proxy URL")
