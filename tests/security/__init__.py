"""Issue 3, "Hold the door": every bad answer an IdP or a browser can send is refused.

Shared assertions: a refusal is the contract's HTML error page with its status
and code, and leaves no session behind.
"""

from __future__ import annotations

import contextlib
import copy
import json
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
from starlette.testclient import TestClient

from bridge.session_store import CookieSealer
from bridge.settings import parse_settings
from bridge.web import create_app
from tests.conftest import PUBLIC_URL, SESSION_SECRET, auth
from tests.idp import FakeIdP

ERROR_CODE = re.compile(r'<code id="error-code">([^<]*)</code>')
SESSION_MAX_AGE = 8 * 3600  # [session] max_age's default


def error_code(response: httpx.Response) -> str | None:
    match = ERROR_CODE.search(response.text)
    return match.group(1) if match else None


def seal_session(
    data: dict[str, Any], *, secret: str = SESSION_SECRET, expires_in: int = SESSION_MAX_AGE
) -> str:
    """A cookie value the bridge would have written for this session (or for this secret)."""
    envelope = {"e": int(time.time()) + expires_in, "d": data}
    return CookieSealer(secret, cookie_name="bridge_session").seal(json.dumps(envelope).encode())


def session_of(client: TestClient) -> dict[str, Any]:
    """The session cookie's content, or {} when there is none (or it is not ours, or expired)."""
    raw = client.cookies.get("bridge_session")
    opened = CookieSealer(SESSION_SECRET, cookie_name="bridge_session").open(raw) if raw else None
    if opened is None:
        return {}
    envelope = json.loads(opened[0])
    return envelope["d"] if envelope["e"] > time.time() else {}  # type: ignore[no-any-return]


def hint_of(client: TestClient) -> str | None:
    """The ID token sealed for logout's id_token_hint in its own cookie, if there is one
    and it belongs to the current session."""
    raw = client.cookies.get("bridge_session_logout", path="/logout")
    sealer = CookieSealer(SESSION_SECRET, cookie_name="bridge_session_logout")
    opened = sealer.open(raw) if raw else None
    if opened is None:
        return None
    data = json.loads(opened[0])
    return data["h"] if data["sid"] == session_of(client).get("sid") else None  # type: ignore[no-any-return]


def assert_refused(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, (response.status_code, response.text[:400])
    assert response.headers["content-type"].startswith("text/html")
    assert error_code(response) == code, response.text[:400]
    assert "location" not in response.headers


def assert_no_session(client: TestClient) -> None:
    answer = auth(client)
    assert answer.status_code == 401, answer.text
    assert answer.json() == {"error": "not_signed_in"}
    assert "u" not in session_of(client)


def assert_id_token_rejected(response: httpx.Response, client: TestClient, idp: FakeIdP) -> None:
    """401 id_token_invalid, no session, and the userinfo endpoint never asked."""
    assert_refused(response, 401, "id_token_invalid")
    assert_no_session(client)
    assert idp.routes["userinfo"].called is False


def assert_signed_in(response: httpx.Response, client: TestClient) -> dict[str, Any]:
    assert response.status_code == 303, (response.status_code, response.text[:400])
    assert response.headers["location"].startswith(f"{PUBLIC_URL}/")
    answer = auth(client)
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


@contextlib.contextmanager
def case(name: str) -> Iterator[None]:
    """Label a failure inside a loop over cases with the case it belongs to."""
    try:
        yield
    except AssertionError as exc:
        raise AssertionError(f"case {name!r}: {exc}") from exc


def set_session_cookie(client: TestClient, value: str) -> None:
    """Replace the browser's session cookie, as the bridge's own Set-Cookie would."""
    client.cookies.clear()
    client.cookies.set("bridge_session", value, domain="127.0.0.1", path="/")


@contextlib.contextmanager
def app_client(settings_data: dict[str, Any], *, warm_up: bool = False) -> Iterator[TestClient]:
    """A client on an app built from edited settings (the ``idps`` fixture must be active)."""
    settings = parse_settings(copy.deepcopy(settings_data))
    base_url = settings.server.public_url
    app = create_app(settings, warm_up=warm_up)
    with TestClient(app, base_url=base_url, follow_redirects=False) as client:
        yield client
