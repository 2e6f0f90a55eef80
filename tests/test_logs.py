"""Logs: one line per login with its outcome, text or JSON, nothing secret, hints for operators."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from bridge.logs import setup_logging
from bridge.settings import Settings
from bridge.web import create_app
from tests.conftest import (
    PUBLIC_URL,
    SESSION_SECRET,
    TILEDESK_SECRET,
    auth,
    login,
    start_login,
)
from tests.idp import FakeIdP

Read = Callable[[], list[str]]


@pytest.fixture
def use_logging(capsys: pytest.CaptureFixture[str]) -> Iterator[Callable[[str, str], Read]]:
    """Install the bridge's logging in a format; the returned function reads the new lines."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    quiet = {name: logging.getLogger(name).level for name in ("httpx", "httpcore")}

    def install(fmt: str, level: str = "info") -> Read:
        setup_logging(fmt, level)
        capsys.readouterr()
        return lambda: capsys.readouterr().err.splitlines()

    yield install
    root.handlers[:], root.level = saved
    for name, level in quiet.items():
        logging.getLogger(name).setLevel(level)


def login_lines(lines: list[str]) -> list[str]:
    return [line for line in lines if "login " in line]


def test_text_login_line_has_provider_outcome_request_id_and_duration(
    use_logging: Callable[[str], Read], client: TestClient, idp: FakeIdP
) -> None:
    read = use_logging("text")
    response = login(client, idp)
    (line,) = login_lines(read())
    rid = response.headers["x-request-id"]
    assert f" INFO bridge.web [{rid}] login ok provider=acme outcome=ok duration_ms=" in line


def test_json_login_line_has_provider_outcome_request_id_and_duration(
    use_logging: Callable[[str], Read], client: TestClient, idp: FakeIdP
) -> None:
    read = use_logging("json")
    response = login(client, idp)
    records = [json.loads(line) for line in read()]
    (record,) = [r for r in records if r["message"].startswith("login")]
    assert record["message"] == "login ok"
    assert record["level"] == "info"
    assert record["provider"] == "acme"
    assert record["outcome"] == "ok"
    assert record["request_id"] == response.headers["x-request-id"]
    assert isinstance(record["duration_ms"], int)


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_failed_login_logs_exactly_one_line(
    use_logging: Callable[[str], Read], client: TestClient, idp: FakeIdP, fmt: str
) -> None:
    read = use_logging(fmt)
    start_login(client)
    client.get("/callback/acme", params={"state": "forged", "code": "x"})
    lines = read()
    assert len(lines) == 1, lines
    assert "state_mismatch" in lines[0]
    if fmt == "json":
        record = json.loads(lines[0])
        assert record["outcome"] == "state_mismatch" and record["level"] == "warning"


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_no_secret_token_code_or_cookie_in_the_log(
    use_logging: Callable[[str, str], Read], client: TestClient, idp: FakeIdP, fmt: str
) -> None:
    read = use_logging(fmt, "debug")
    id_tokens: list[str] = []
    real_id_token = idp.id_token

    def capture(user: dict[str, Any], **kw: Any) -> str:
        id_tokens.append(real_id_token(user, **kw))
        return id_tokens[-1]

    idp.id_token = capture  # type: ignore[method-assign]
    location = start_login(client)
    code, state = idp.authorize(location)
    verifier_challenge = idp.grants[code].challenge
    nonce = idp.grants[code].nonce
    done = client.get("/callback/acme", params={"code": code, "state": state})
    assert done.status_code == 303
    token = auth(client).json()["token"]
    cookie = client.cookies["bridge_session"]
    client.post("/logout", headers={"Origin": PUBLIC_URL})
    output = "\n".join(read())

    assert "login ok" in output
    secrets = {
        "code": code,
        "state": state,
        "nonce": nonce,
        "code_challenge": verifier_challenge,
        "id_token": id_tokens[0],
        "id_token signature": id_tokens[0].rsplit(".", 1)[1],
        "access_token": next(iter(idp.access_tokens)),
        "tiledesk token": token.removeprefix("JWT "),
        "session cookie": cookie,
        "client secret": idp.client_secret,
        "tiledesk secret": TILEDESK_SECRET,
        "session secret": SESSION_SECRET,
    }
    for what, value in secrets.items():
        assert value and value not in output, what


# --- errors for operators ------------------------------------------------------------


def operator_line(read: Read) -> str:
    lines = read()
    assert len(lines) == 1, lines
    return lines[0]


def test_wrong_client_secret_shows_idp_error_and_says_what_to_fix(
    use_logging: Callable[[str], Read], client: TestClient, idp: FakeIdP
) -> None:
    read = use_logging("text")
    configured = idp.client_secret
    idp.client_secret = "rotated-at-the-idp-0123456789"
    response = login(client, idp)
    assert response.status_code == 502
    assert 'id="error-code">idp_error<' in response.text
    line = operator_line(read)
    assert "login failed: acme: the token endpoint refused: invalid_client" in line
    assert "the IdP does not accept client 'bridge-client' with the configured secret" in line
    assert "fix providers.acme.client_id or client_secret" in line
    assert "outcome=idp_error" in line
    assert configured not in line


@pytest.mark.parametrize(
    "answer",
    [
        {"error": "invalid_grant", "error_description": "Incorrect redirect_uri"},
        {"error": "redirect_uri_mismatch", "error_description": "Bad Request"},
        {
            "error": "invalid_request",
            "error_description": "The 'redirect_uri' does not match the authorization request.",
        },
    ],
)
def test_wrong_redirect_uri_at_the_idp_names_the_uri_to_register(
    use_logging: Callable[[str], Read], client: TestClient, idp: FakeIdP, answer: dict[str, str]
) -> None:
    read = use_logging("text")
    idp.routes["token"].mock(side_effect=None, return_value=httpx.Response(400, json=answer))
    response = login(client, idp)
    assert response.status_code == 502
    assert 'id="error-code">idp_error<' in response.text
    line = operator_line(read)
    assert f"the token endpoint refused: {answer['error']} ({answer['error_description']})" in line
    assert (
        f"register exactly {PUBLIC_URL}/callback/acme as a redirect URI of client "
        "'bridge-client' at the IdP"
    ) in line


def test_a_refused_code_mentions_the_redirect_uri_too(
    use_logging: Callable[[str], Read], client: TestClient, idp: FakeIdP
) -> None:
    read = use_logging("json")
    code, state = idp.authorize(start_login(client))
    idp.grants[code].redirect_uri = "https://elsewhere.test/callback"
    response = client.get("/callback/acme", params={"code": code, "state": state})
    assert response.status_code == 502
    record = json.loads(operator_line(read))
    assert record["outcome"] == "idp_error"
    assert "invalid_grant: the code was refused" in record["message"]
    assert f"not exactly {PUBLIC_URL}/callback/acme" in record["message"]


def test_unauthorized_client_asks_for_the_code_grant(
    use_logging: Callable[[str], Read], client: TestClient, idp: FakeIdP
) -> None:
    read = use_logging("text")
    answer = {"error": "unauthorized_client"}
    idp.routes["token"].mock(side_effect=None, return_value=httpx.Response(400, json=answer))
    login(client, idp)
    assert "may not use the authorization code grant" in operator_line(read)


def test_an_idp_description_cannot_forge_log_lines(
    use_logging: Callable[[str], Read], client: TestClient, idp: FakeIdP
) -> None:
    read = use_logging("text")
    answer = {"error": "invalid_grant", "error_description": "x\n2030-01-01 INFO forged line"}
    idp.routes["token"].mock(side_effect=None, return_value=httpx.Response(400, json=answer))
    login(client, idp)
    line = operator_line(read)
    assert "forged line" in line


# --- unexpected exceptions ---------------------------------------------------------------

#: Held in a local variable of the failing route: a traceback shows code, never locals.
LOCAL_SECRET = "local-value-that-must-stay-out-of-logs-0123"


async def _failing_route(request: Request) -> Response:
    api_key = LOCAL_SECRET
    if api_key:
        raise RuntimeError("the backing store went away")
    return Response()


async def _failing_stream(request: Request) -> Response:
    async def body() -> Any:
        yield b"partial"
        api_key = LOCAL_SECRET
        if api_key:
            raise RuntimeError("the stream broke")

    return StreamingResponse(body())


@pytest.fixture
def failing_client(settings: Settings, idps: dict[str, FakeIdP]) -> Iterator[TestClient]:
    """The bridge's app with two tiny routes that raise, before and after the answer starts."""
    app = create_app(settings, warm_up=False)
    app.router.routes.append(Route("/boom", _failing_route))
    app.router.routes.append(Route("/boom-stream", _failing_stream))
    with TestClient(app, base_url=PUBLIC_URL, raise_server_exceptions=False) as test_client:
        yield test_client


def test_an_unexpected_exception_is_logged_once_with_traceback_and_request_id(
    failing_client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        response = failing_client.get("/boom")
    (record,) = [r for r in caplog.records if r.name.startswith("bridge")]
    assert record.levelno == logging.ERROR
    assert record.getMessage() == "internal_error on GET /boom (RuntimeError)"
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], RuntimeError)
    assert str(record.exc_info[1]) == "the backing store went away"
    assert response.status_code == 500
    assert '<code id="error-code">internal_error</code>' in response.text
    assert "Traceback" not in response.text and "backing store" not in response.text


def test_json_log_of_an_unexpected_exception_has_the_traceback_and_request_id(
    use_logging: Callable[[str], Read], failing_client: TestClient
) -> None:
    read = use_logging("json")
    response = failing_client.get("/boom")
    (line,) = read()
    record = json.loads(line)
    assert record["level"] == "error"
    assert record["message"] == "internal_error on GET /boom (RuntimeError)"
    assert record["request_id"] == response.headers["x-request-id"]
    assert record["error_type"] == "RuntimeError"
    assert record["traceback"].startswith("Traceback (most recent call last):\n")
    assert ", in _failing_route\n" in record["traceback"]
    assert record["traceback"].endswith("RuntimeError: the backing store went away")
    assert LOCAL_SECRET not in line


def test_text_log_of_an_unexpected_exception_indents_the_traceback_under_its_line(
    use_logging: Callable[[str], Read], failing_client: TestClient
) -> None:
    read = use_logging("text")
    response = failing_client.get("/boom")
    first, *traceback = read()
    rid = response.headers["x-request-id"]
    assert first.endswith(f" ERROR bridge.web [{rid}] internal_error on GET /boom (RuntimeError)")
    assert traceback[0] == "    Traceback (most recent call last):"
    assert traceback[-1] == "    RuntimeError: the backing store went away"
    assert all(line.startswith("    ") for line in traceback)
    assert any(line.endswith(", in _failing_route") for line in traceback)
    assert LOCAL_SECRET not in "\n".join([first, *traceback])


def test_an_exception_message_cannot_forge_log_lines_through_the_traceback(
    use_logging: Callable[[str], Read], settings: Settings, idps: dict[str, FakeIdP]
) -> None:
    async def forging(request: Request) -> Response:
        raise ValueError("x\n2030-01-01 INFO bridge.web [-] login ok\rforged")

    app = create_app(settings, warm_up=False)
    app.router.routes.append(Route("/forge", forging))
    read = use_logging("text")
    with TestClient(app, base_url=PUBLIC_URL) as test_client:
        test_client.get("/forge")
    first, *traceback = read()
    assert first.endswith("internal_error on GET /forge (ValueError)")
    assert all(line.startswith("    ") for line in traceback)
    assert traceback[-2:] == [
        "    ValueError: x",
        "    2030-01-01 INFO bridge.web [-] login ok\\rforged",
    ]


def test_an_exception_after_the_answer_started_is_logged_once_with_traceback(
    use_logging: Callable[[str], Read], failing_client: TestClient
) -> None:
    read = use_logging("json")
    response = failing_client.get("/boom-stream")
    (line,) = read()
    record = json.loads(line)
    assert record["level"] == "error"
    assert record["message"] == "internal_error after the answer started (RuntimeError)"
    assert record["request_id"] == response.headers["x-request-id"]
    assert record["traceback"].endswith("RuntimeError: the stream broke")
    assert LOCAL_SECRET not in line
