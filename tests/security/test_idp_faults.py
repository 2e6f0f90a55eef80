"""IdP faults: every call is bounded by the provider's timeout, every bad answer is a clean
``idp_error`` / ``idp_timeout`` page, never a 500 and never a hang."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from bridge.errors import BridgeError, IdpError, IdpTimeout, IdpUnreachable
from bridge.settings import Settings
from bridge.web import Bridge
from tests.conftest import login, start_login
from tests.idp import FakeIdP
from tests.security import assert_id_token_rejected, assert_no_session, assert_refused, case

TIMEOUTS = [httpx.ConnectTimeout, httpx.ReadTimeout, httpx.WriteTimeout, httpx.PoolTimeout]


def _timeout_of(route: Any) -> dict[str, float]:
    return route.calls.last.request.extensions["timeout"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("configured", [None, 3.5])
def test_every_idp_call_carries_the_providers_timeout(
    settings_data: dict[str, Any],
    request: pytest.FixtureRequest,
    idp: FakeIdP,
    configured: float | None,
) -> None:
    if configured is not None:
        settings_data["providers"]["acme"]["timeout"] = configured
    client: TestClient = request.getfixturevalue("client")
    assert login(client, idp).status_code == 303
    expected = configured or 10.0
    for name in ("discovery", "jwks", "token", "userinfo"):
        assert idp.routes[name].called, name
        assert _timeout_of(idp.routes[name]) == dict.fromkeys(
            ("connect", "read", "write", "pool"), expected
        ), name


# --- timeouts -----------------------------------------------------------------------------


@pytest.mark.parametrize("fault", TIMEOUTS, ids=lambda f: f.__name__)
def test_token_endpoint_timeout_is_idp_timeout(
    client: TestClient, idp: FakeIdP, fault: type[Exception]
) -> None:
    idp.faults["token"] = fault
    response = login(client, idp)
    assert_refused(response, 504, "idp_timeout")
    assert_no_session(client)
    assert idp.routes["userinfo"].called is False


@pytest.mark.parametrize("route", ["jwks", "userinfo"])
def test_jwks_or_userinfo_timeout_is_idp_timeout(
    client: TestClient, idp: FakeIdP, route: str
) -> None:
    idp.faults[route] = httpx.ReadTimeout
    assert_refused(login(client, idp), 504, "idp_timeout")
    assert_no_session(client)


def test_discovery_timeout_at_login_is_idp_timeout(client: TestClient, idp: FakeIdP) -> None:
    idp.faults["discovery"] = httpx.ConnectTimeout
    assert_refused(client.get("/login/acme"), 504, "idp_timeout")
    assert_no_session(client)


@pytest.mark.parametrize("route", ["discovery", "jwks", "token", "userinfo"])
def test_idp_trickling_its_answer_is_cut_off_at_the_timeout(
    settings_data: dict[str, Any], request: pytest.FixtureRequest, idp: FakeIdP, route: str
) -> None:
    """httpx bounds each read; a slow-drip IdP must still not hold the login past the timeout."""
    settings_data["providers"]["acme"]["timeout"] = 0.05
    client: TestClient = request.getfixturevalue("client")

    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(30)
        raise AssertionError("never answered")

    idp.faults[route] = slow
    started = time.perf_counter()
    response = client.get("/login/acme") if route == "discovery" else login(client, idp)
    assert time.perf_counter() - started < 5
    assert_refused(response, 504, "idp_timeout")
    assert_no_session(client)


def test_unreachable_token_endpoint_is_idp_error(client: TestClient, idp: FakeIdP) -> None:
    idp.faults["token"] = httpx.ConnectError
    assert_refused(login(client, idp), 502, "idp_error")
    assert_no_session(client)


# --- bad answers from the token endpoint --------------------------------------------------


def _token_answer(idp: FakeIdP, **changes: Any) -> Any:
    """The real token answer with some fields changed (None removes one)."""

    def serve(request: httpx.Request) -> httpx.Response:
        real = idp._token(request).json()
        real.update(changes)
        return httpx.Response(200, json={k: v for k, v in real.items() if v is not None})

    return serve


BAD_TOKEN_ANSWERS: dict[str, Any] = {
    "http-500-html": httpx.Response(500, html="<h1>Internal Server Error</h1>"),
    "http-503-empty": httpx.Response(503),
    "http-200-html": httpx.Response(200, html="<html><body>Login</body></html>"),
    "http-200-truncated-json": httpx.Response(200, text='{"access_token": "x", "id_tok'),
    "json-list": httpx.Response(200, json=["access_token", "id_token"]),
    "json-string": httpx.Response(200, json="a token"),
    "json-null": httpx.Response(200, json=None),
    "json-number": httpx.Response(200, json=42),
    "invalid-grant": httpx.Response(400, json={"error": "invalid_grant"}),
    "invalid-client": httpx.Response(401, json={"error": "invalid_client"}),
    "error-in-a-200": httpx.Response(200, json={"error": "server_error"}),
    "error-not-a-string": httpx.Response(400, json={"error": {"nested": True}}),
    "redirect": httpx.Response(302, headers={"location": "https://evil.test/token"}),
}


def test_bad_token_endpoint_answer_is_idp_error(client: TestClient, idp: FakeIdP) -> None:
    for name, answer in BAD_TOKEN_ANSWERS.items():
        with case(name):
            idp.faults["token"] = answer
            assert_refused(login(client, idp), 502, "idp_error")
            assert_no_session(client)
    assert idp.routes["userinfo"].called is False


INCOMPLETE_TOKEN_ANSWERS: dict[str, dict[str, Any]] = {
    "no-id-token": {"id_token": None},
    "id-token-number": {"id_token": 12345},
    "id-token-list": {"id_token": ["a.b.c"]},
    "no-access-token": {"access_token": None},
    "token-type-mac": {"token_type": "mac"},
    "no-token-type": {"token_type": None},
}


def test_incomplete_token_response_is_idp_error(client: TestClient, idp: FakeIdP) -> None:
    for name, changes in INCOMPLETE_TOKEN_ANSWERS.items():
        with case(name):
            idp.faults["token"] = _token_answer(idp, **changes)
            assert_refused(login(client, idp), 502, "idp_error")
            assert_no_session(client)
    assert idp.routes["userinfo"].called is False


GARBAGE_ID_TOKENS = ["", "not-a-jwt", "a.b", "a.b.c", "...", "e30.e30.", "a.b.c.d.e", "x" * 5000]


def test_garbage_id_token_is_id_token_invalid(client: TestClient, idp: FakeIdP) -> None:
    for id_token in GARBAGE_ID_TOKENS:
        with case(id_token[:20]):
            idp.faults["token"] = _token_answer(idp, id_token=id_token)
            assert_id_token_rejected(login(client, idp), client, idp)


# --- bad answers from userinfo ------------------------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(500),
        httpx.Response(401, json={"error": "invalid_token"}),
        httpx.Response(200, text="not json"),
        httpx.Response(200, json=["sub", "user-1"]),
    ],
    ids=["500", "401", "not-json", "list"],
)
def test_bad_userinfo_answer_is_idp_error(
    client: TestClient, idp: FakeIdP, answer: httpx.Response
) -> None:
    idp.faults["userinfo"] = answer
    assert_refused(login(client, idp), 502, "idp_error")
    assert_no_session(client)


# --- errors the IdP sends back on the redirect --------------------------------------------


def _idp_error(client: TestClient, idp: FakeIdP, **params: str) -> httpx.Response:
    _, state = idp.authorize(start_login(client))
    return client.get("/callback/acme", params={"state": state, **params})


def test_idp_access_denied_is_shown_as_such(client: TestClient, idp: FakeIdP) -> None:
    response = _idp_error(
        client, idp, error="access_denied", error_description="The user cancelled the sign-in"
    )
    assert_refused(response, 403, "access_denied")
    assert "The user cancelled the sign-in" in response.text
    assert_no_session(client)
    assert idp.routes["token"].called is False


@pytest.mark.parametrize("error", ["login_required", "interaction_required"])
def test_idp_interaction_errors_are_403(client: TestClient, idp: FakeIdP, error: str) -> None:
    assert_refused(_idp_error(client, idp, error=error), 403, error)


def test_idp_other_errors_are_400_with_their_code(client: TestClient, idp: FakeIdP) -> None:
    assert_refused(
        _idp_error(client, idp, error="temporarily_unavailable"), 400, "temporarily_unavailable"
    )


def test_idp_error_text_is_escaped_and_sanitised(client: TestClient, idp: FakeIdP) -> None:
    response = _idp_error(
        client,
        idp,
        error='<script>alert("x")</script>',
        error_description='<img src=x onerror="alert(1)">',
    )
    assert response.status_code == 400
    assert "<script>" not in response.text and "<img" not in response.text
    assert "&lt;img" in response.text
    code = response.text.split('id="error-code">')[1].split("<")[0]
    assert code.replace("_", "").isalnum()
    assert_no_session(client)


def test_idp_error_with_a_code_is_still_an_error(client: TestClient, idp: FakeIdP) -> None:
    code, state = idp.authorize(start_login(client))
    response = client.get(
        "/callback/acme", params={"state": state, "code": code, "error": "access_denied"}
    )
    assert_refused(response, 403, "access_denied")
    assert idp.routes["token"].called is False
    assert_no_session(client)


def test_idp_error_without_our_state_is_state_mismatch(client: TestClient) -> None:
    response = client.get("/callback/acme", params={"error": "access_denied", "state": "forged"})
    assert_refused(response, 400, "state_mismatch")


# --- the operator's log names the call that failed ----------------------------------------


@pytest.mark.parametrize(
    ("route", "fault", "said"),
    [
        ("token", httpx.ConnectError, "could not reach the token endpoint"),
        ("userinfo", httpx.ConnectError, "could not reach the userinfo endpoint"),
        ("token", httpx.ReadTimeout, "timed out"),
        ("userinfo", httpx.Response(500), "answered HTTP 500"),
        ("token", httpx.RemoteProtocolError, "failed: RemoteProtocolError"),
    ],
    ids=["token-unreachable", "userinfo-unreachable", "timeout", "http-500", "protocol-error"],
)
def test_failed_idp_call_is_logged_with_its_url(
    client: TestClient,
    idp: FakeIdP,
    caplog: pytest.LogCaptureFixture,
    route: str,
    fault: Any,
    said: str,
) -> None:
    idp.discovery_overrides["userinfo_endpoint"] = f"{idp.base}/userinfo?schema=openid"
    idp.faults[route] = fault
    response = login(client, idp)
    assert response.status_code in (502, 504)
    failed = [r.getMessage() for r in caplog.records if r.getMessage().startswith("login failed")]
    assert len(failed) == 1, failed
    assert said in failed[0]
    assert f"{idp.base}/{route}" in failed[0], failed[0]
    assert "schema=openid" not in caplog.text


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (httpx.ConnectError, IdpUnreachable),
        (httpx.Response(503), IdpError),
        (httpx.ConnectTimeout, IdpTimeout),
    ],
    ids=["unreachable", "answered-an-error", "timed-out"],
)
def test_unreachable_idp_is_told_apart_from_an_idp_answering_an_error(
    settings: Settings, idps: dict[str, FakeIdP], fault: Any, expected: type[BridgeError]
) -> None:
    idps["acme"].faults["discovery"] = fault

    async def load() -> BridgeError:
        app = Bridge(settings)
        try:
            await app.providers["acme"].metadata()
        except BridgeError as exc:
            return exc
        finally:
            await app.aclose()
        raise AssertionError("discovery loaded")

    error = asyncio.run(load())
    assert type(error) is expected
    assert (error.code, error.status) == (expected.code, expected.status)
    if expected is IdpUnreachable:
        assert (error.code, error.status) == ("idp_error", 502)
