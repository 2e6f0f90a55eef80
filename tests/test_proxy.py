"""Behind a TLS-terminating proxy: forwarded headers only from trusted_proxies.

And every URL built from public_url, whatever Host or X-Forwarded-Host say.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from starlette.testclient import TestClient

from bridge.settings import parse_settings
from bridge.web import create_app
from tests.conftest import PUBLIC_URL
from tests.idp import FakeIdP

PROXY = ("10.0.0.7", 40000)
STRANGER = ("203.0.113.9", 40000)
SPOOFED = {
    "Host": "evil.test",
    "X-Forwarded-Host": "evil.test",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-For": "198.51.100.1",
}
GENERATED_ID = re.compile(r"^[0-9a-f]{16}$")

Factory = Callable[..., TestClient]


@pytest.fixture
def make_client(settings_data: dict[str, Any], idps: dict[str, FakeIdP]) -> Iterator[Factory]:
    """A client seen from ``peer``, on an app whose trusted_proxies are ``trusted``."""
    clients: list[TestClient] = []

    def make(peer: tuple[str, int], trusted: tuple[str, ...] = ("10.0.0.0/8",)) -> TestClient:
        data = copy.deepcopy(settings_data)
        data["server"]["trusted_proxies"] = list(trusted)
        app = create_app(parse_settings(data), warm_up=False)
        client = TestClient(app, base_url=PUBLIC_URL, follow_redirects=False, client=peer)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def test_request_id_is_honoured_from_a_trusted_proxy(make_client: Factory) -> None:
    response = make_client(PROXY).get("/healthz", headers={"X-Request-ID": "lb-7f3a.42"})
    assert response.headers["x-request-id"] == "lb-7f3a.42"


@pytest.mark.parametrize(
    ("peer", "trusted"),
    [(STRANGER, ("10.0.0.0/8",)), (PROXY, ()), (("testclient", 1), ("10.0.0.0/8",))],
)
def test_request_id_from_anyone_else_is_replaced(
    make_client: Factory, peer: tuple[str, int], trusted: tuple[str, ...]
) -> None:
    response = make_client(peer, trusted).get("/healthz", headers={"X-Request-ID": "forged-id"})
    assert GENERATED_ID.fullmatch(response.headers["x-request-id"])


@pytest.mark.parametrize("bad", ["has space", "x" * 65, "new\\nline", "semi;colon"])
def test_malformed_request_id_is_replaced_even_from_a_proxy(make_client: Factory, bad: str) -> None:
    response = make_client(PROXY).get("/healthz", headers={"X-Request-ID": bad})
    assert GENERATED_ID.fullmatch(response.headers["x-request-id"])


def test_each_request_gets_its_own_id(make_client: Factory) -> None:
    client = make_client(STRANGER)
    assert (
        client.get("/healthz").headers["x-request-id"]
        != client.get("/healthz").headers["x-request-id"]
    )


@pytest.mark.parametrize("peer", [PROXY, STRANGER])
def test_spoofed_host_does_not_reach_redirect_uri_or_location(
    make_client: Factory, idp: FakeIdP, peer: tuple[str, int]
) -> None:
    client = make_client(peer)
    start = client.get("/login/acme?next=/help", headers=SPOOFED)
    assert start.status_code == 302
    query = parse_qs(urlsplit(start.headers["location"]).query)
    assert query["redirect_uri"] == [f"{PUBLIC_URL}/callback/acme"]

    code, state = idp.authorize(start.headers["location"])
    done = client.get("/callback/acme", params={"code": code, "state": state}, headers=SPOOFED)
    assert done.status_code == 303, done.text
    assert done.headers["location"] == f"{PUBLIC_URL}/help"

    out = client.post("/logout", headers={**SPOOFED, "Origin": PUBLIC_URL})
    assert out.status_code == 303
    logout_query = parse_qs(urlsplit(out.headers["location"]).query)
    assert logout_query["post_logout_redirect_uri"] == [f"{PUBLIC_URL}/"]


def test_spoofed_host_gets_no_slash_redirect(make_client: Factory) -> None:
    response = make_client(PROXY).get("/healthz/", headers=SPOOFED)
    assert response.status_code == 404
    assert "location" not in response.headers


def test_error_page_from_behind_a_proxy_names_no_spoofed_host(
    make_client: Factory, idp: FakeIdP
) -> None:
    response = make_client(PROXY).get("/callback/acme?state=x&code=y", headers=SPOOFED)
    assert response.status_code == 400
    assert "evil.test" not in response.text
