"""Secrets stay secret: with every logger at DEBUG (authlib, httpx, httpcore, the bridge), no
secret, code, verifier, state, nonce, token or cookie value reaches a log record."""

from __future__ import annotations

import html
import logging
import re
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from starlette.testclient import TestClient

from bridge.logs import JsonFormatter, TextFormatter
from bridge.oidc import Provider
from tests.conftest import PUBLIC_URL, SESSION_SECRET, TILEDESK_SECRET, auth, base_settings
from tests.idp import FakeIdP
from tests.security import app_client, session_of

LOGGERS = ("authlib", "httpx", "httpcore", "bridge", "starlette", "respx")


class Secrets:
    """Everything that must never be logged, collected while the flows run."""

    def __init__(self) -> None:
        self.values: set[str] = {TILEDESK_SECRET, SESSION_SECRET}

    def add(self, *values: Any) -> None:
        for value in values:
            if isinstance(value, str) and len(value) >= 8:
                self.values.add(value)
                if value.count(".") == 2:  # a JWS: its parts are as telling as the whole
                    self.values.update(p for p in value.split(".") if len(p) >= 8)

    def add_cookies(self, client: TestClient) -> None:
        for cookie in client.cookies.jar:
            self.add(cookie.value)


@pytest.fixture
def secrets(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> Secrets:
    caplog.set_level(logging.DEBUG)
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    collected = Secrets()
    original = Provider.exchange_code

    async def exchange_code(
        self: Provider, code: str, verifier: str, **kwargs: Any
    ) -> dict[str, Any]:
        collected.add(code, verifier)
        token = await original(self, code, verifier, **kwargs)
        collected.add(*token.values())
        return token

    monkeypatch.setattr(Provider, "exchange_code", exchange_code)
    return collected


def _start(client: TestClient, secrets: Secrets, provider: str = "acme") -> str:
    response = client.get(f"/login/{provider}")
    assert response.status_code == 302
    location = response.headers["location"]
    query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    secrets.add(query["state"], query["nonce"], query["code_challenge"])
    for flow in session_of(client).get("flows", {}).values():
        secrets.add(flow["v"], flow["n"])
    secrets.add_cookies(client)
    return location


def _login(client: TestClient, idp: FakeIdP, secrets: Secrets, **extra: str) -> httpx.Response:
    code, state = idp.authorize(_start(client, secrets))
    secrets.add(code, state)
    response = client.get("/callback/acme", params={"code": code, "state": state, **extra})
    secrets.add_cookies(client)
    for token in idp.access_tokens:
        secrets.add(token)
    return response


def _mint(client: TestClient, secrets: Secrets) -> None:
    answer = auth(client)
    if answer.status_code == 200:
        secrets.add(answer.json()["token"], answer.json()["token"].removeprefix("JWT "))


def _is_the_test_browser(record: logging.LogRecord) -> bool:
    """The TestClient is itself an httpx client: its own request lines (the browser's URL bar,
    which does hold codes and states) are logged on the test's thread, the bridge's on the app's."""
    return record.name == "httpx" and record.thread == threading.main_thread().ident


def _records_text(caplog: pytest.LogCaptureFixture) -> Iterator[tuple[str, str]]:
    text_format, json_format = TextFormatter(), JsonFormatter()
    records = [r for r in caplog.records if not _is_the_test_browser(r)]
    assert any(r.name == "httpx" for r in records), "the bridge's own httpx lines are checked"
    yield "caplog.text", "\n".join(text_format.format(r) for r in records)
    for record in records:
        where = f"{record.name}:{record.levelname}"
        yield where, record.getMessage()
        yield where, repr(record.args)
        yield where, repr(getattr(record, "fields", None))
        yield where, text_format.format(record)
        yield where, json_format.format(record)


def _assert_nothing_secret_logged(caplog: pytest.LogCaptureFixture, secrets: Secrets) -> None:
    assert caplog.records, "the flows did log: the check is not vacuous"
    assert len(secrets.values) > 10
    for where, text in _records_text(caplog):
        for secret in secrets.values:
            assert secret not in text, f"a secret reached the log ({where}): {text[:200]!r}"
            assert html.escape(secret) not in text


def test_no_secret_in_the_logs_of_a_successful_flow(
    client: TestClient, idp: FakeIdP, secrets: Secrets, caplog: pytest.LogCaptureFixture
) -> None:
    secrets.add(idp.client_secret)
    assert _login(client, idp, secrets).status_code == 303
    _mint(client, secrets)
    _mint(client, secrets)
    secrets.add_cookies(client)
    logout = client.post("/logout", headers={"Origin": PUBLIC_URL})
    assert logout.status_code == 303
    _assert_nothing_secret_logged(caplog, secrets)


def test_no_secret_in_the_logs_of_failed_flows(
    client: TestClient,
    idp: FakeIdP,
    secrets: Secrets,
    caplog: pytest.LogCaptureFixture,
) -> None:
    secrets.add(idp.client_secret)
    # The ID token refused.
    idp.tamper = lambda claims, header: claims.update(aud="another-client")
    assert _login(client, idp, secrets).status_code == 401
    idp.tamper = None
    # The userinfo's sub differs.
    idp.userinfo_overrides = {"sub": "someone-else"}
    assert _login(client, idp, secrets).status_code == 401
    idp.userinfo_overrides = None
    # The token endpoint refuses, errs, times out.
    for fault, status in (
        (httpx.Response(400, json={"error": "invalid_grant"}), 502),
        (httpx.Response(500, html="<p>boom</p>"), 502),
        (httpx.ReadTimeout, 504),
    ):
        idp.faults["token"] = fault
        assert _login(client, idp, secrets).status_code == status
    idp.faults.clear()
    # The IdP sends an error back; a state is replayed; a code is missing.
    location = _start(client, secrets)
    _, state = idp.authorize(location)
    assert (
        client.get("/callback/acme", params={"state": state, "error": "access_denied"}).status_code
        == 403
    )
    assert (
        client.get("/callback/acme", params={"state": state, "code": "x" * 20}).status_code == 400
    )
    _, state = idp.authorize(_start(client, secrets))
    assert client.get("/callback/acme", params={"state": state}).status_code == 400
    # Cross-site and forged-cookie calls.
    client.post("/auth", headers={"Origin": "https://evil.test"})
    forged = "eyJ1Ijp7Il9pZCI6Im1hbGxvcnkifX0=.forged.signature-value"
    secrets.add(forged)
    client.post("/auth", headers={"Origin": PUBLIC_URL, "Cookie": f"bridge_session={forged}"})
    secrets.add_cookies(client)
    _assert_nothing_secret_logged(caplog, secrets)


def test_no_secret_in_the_logs_of_a_policy_refusal(
    settings_data: dict[str, Any],
    idps: dict[str, FakeIdP],
    secrets: Secrets,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings_data["providers"]["acme"]["access"] = {"allowed_groups": ["admins"]}
    idp = idps["acme"]
    secrets.add(idp.client_secret)
    with app_client(settings_data) as client:
        assert _login(client, idp, secrets).status_code == 403
    _assert_nothing_secret_logged(caplog, secrets)


# --- the development IdP, in-process ------------------------------------------------------


def _dev_sign_in(client: TestClient, secrets: Secrets) -> None:
    location = _start(client, secrets, "dev")
    form = client.get(location)
    assert form.status_code == 200
    hidden = re.search(r'name="authorization_request" value="([^"]*)"', form.text)
    assert hidden
    answer = client.post(
        f"{PUBLIC_URL}/dev-idp/authorize",
        data={
            "authorization_request": html.unescape(hidden.group(1)),
            "name": "Ada Lovelace",
            "email": "ada@example.com",
            "groups": "beta",
        },
    )
    assert answer.status_code == 302, answer.text
    callback = answer.headers["location"]
    answered = {k: v[0] for k, v in parse_qs(urlsplit(callback).query).items()}
    secrets.add(answered["code"], answered["state"])
    done = client.get(callback)
    assert done.status_code == 303, done.text
    secrets.add_cookies(client)


def test_no_secret_in_the_logs_of_the_dev_idp_flow(
    idps: dict[str, FakeIdP], secrets: Secrets, caplog: pytest.LogCaptureFixture
) -> None:
    data = base_settings()
    data["providers"] = {"dev": {"preset": "dev"}}
    with app_client(data) as client:
        provider = client.app.state.bridge.providers["dev"]  # type: ignore[attr-defined]
        secrets.add(provider._client.client_secret)
        _dev_sign_in(client, secrets)
        _mint(client, secrets)
        # A replayed code at the dev IdP's token endpoint, and a second sign-in.
        _dev_sign_in(client, secrets)
        _mint(client, secrets)
        logout = client.post("/logout", headers={"Origin": PUBLIC_URL})
        assert logout.status_code == 303
        hint = parse_qs(urlsplit(logout.headers["location"]).query)["id_token_hint"][0]
        secrets.add(hint)
        client.get(logout.headers["location"])
    assert any(r.name.startswith("bridge.devidp") for r in caplog.records)
    _assert_nothing_secret_logged(caplog, secrets)
