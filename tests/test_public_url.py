"""A public_url written with its default port is still this site to a browser's POST."""

from __future__ import annotations

import respx
from starlette.testclient import TestClient

from bridge.settings import parse_settings
from bridge.web import create_app
from tests.conftest import base_settings


def test_same_origin_post_passes_when_public_url_names_the_default_port(
    mock_idp: respx.MockRouter,
) -> None:
    data = base_settings()
    data["server"]["public_url"] = "https://Chat.Acme.test:443"
    app = create_app(parse_settings(data), warm_up=False)
    with TestClient(app, base_url="https://chat.acme.test", follow_redirects=False) as client:
        # Browsers never send a default port in Origin.
        response = client.post("/logout", headers={"Origin": "https://chat.acme.test"})
    assert response.status_code == 303
    assert response.headers["location"] == "https://chat.acme.test/"
