"""``check --online``: discovery, keys and Tiledesk's verdict, reported per provider."""

from __future__ import annotations

import copy
from typing import Any

import httpx
import jwt
import pytest
import respx

from bridge.selftest import run_online_checks
from bridge.settings import Settings, parse_settings
from tests.conftest import PROJECT_ID, TILEDESK_SECRET
from tests.idp import FakeIdP

API = "https://api.tiledesk.com/v3"
SIGNIN = f"{API}/auth/signinWithCustomToken"
AUDIENCE = f"https://tiledesk.com/projects/{PROJECT_ID}"


def fake_tiledesk(request: httpx.Request) -> httpx.Response:
    """Tiledesk's answer: 200 for a token signed with the project's secret, 401 otherwise."""
    header = request.headers.get("authorization", "")
    if not header.startswith("JWT ") or request.content:
        return httpx.Response(401, text="Unauthorized")
    try:
        payload = jwt.decode(header[4:], TILEDESK_SECRET, algorithms=["HS256"], audience=AUDIENCE)
    except jwt.InvalidTokenError:
        return httpx.Response(401, text="Unauthorized")
    return httpx.Response(200, json={"success": True, "token": header, "user": payload})


@pytest.fixture
def tiledesk_api(mock_idp: respx.MockRouter) -> respx.Route:
    return mock_idp.post(SIGNIN).mock(side_effect=fake_tiledesk)


def run(settings: Settings) -> tuple[bool, list[str]]:
    lines: list[str] = []
    return run_online_checks(settings, out=lines.append), lines


def only(lines: list[str], prefix: str) -> list[str]:
    return [line for line in lines if line.startswith(prefix)]


def test_all_good_passes(
    settings: Settings, idps: dict[str, FakeIdP], tiledesk_api: respx.Route
) -> None:
    passed, lines = run(settings)
    assert passed, lines
    assert not only(lines, "FAIL")
    assert "ok   acme: issuer https://sso.acme.test/realms/acme matches the settings" in lines
    assert (
        "ok   acme: discovery "
        "https://sso.acme.test/realms/acme/.well-known/openid-configuration loaded"
    ) in lines
    assert any(
        line.startswith("ok   acme: JWKS ") and "2 signature key(s)" in line for line in lines
    )
    assert any("acme: end_session_endpoint published" in line for line in lines)
    assert any(line.startswith("ok   google: ID-token algorithms advertised") for line in lines)
    assert (
        f"ok   tiledesk: Tiledesk accepted a token for project {PROJECT_ID}: "
        "project id and secret match"
    ) in lines
    assert lines[-1] == "online checks: all passed"


def test_tiledesk_gets_a_selftest_user_token_and_no_body(
    settings: Settings, idps: dict[str, FakeIdP], tiledesk_api: respx.Route
) -> None:
    run(settings)
    request = tiledesk_api.calls.last.request
    assert request.content == b""
    token = request.headers["authorization"]
    payload = jwt.decode(token[4:], TILEDESK_SECRET, algorithms=["HS256"], audience=AUDIENCE)
    assert payload["_id"] == f"{PROJECT_ID}_bridge-selftest"
    assert payload["firstname"] == "Bridge self-test"
    assert payload["sub"] == "userexternal"
    assert "role" not in payload and "nbf" not in payload


def test_wrong_tiledesk_secret_is_caught(
    settings_data: dict[str, Any], idps: dict[str, FakeIdP], tiledesk_api: respx.Route
) -> None:
    data = copy.deepcopy(settings_data)
    data["tiledesk"]["secret"] = "9f2d7c1e-0000-4a8f-9d50-6a3c2f1a7e11"
    passed, lines = run(parse_settings(data))
    assert not passed
    assert only(lines, "FAIL") == [
        f"FAIL tiledesk: Tiledesk refused the token: the project id ({PROJECT_ID}) or the "
        "secret is wrong (compare [tiledesk] with the project's Settings > Auth)"
    ]
    assert lines[-1] == "online checks: 1 failed"


def test_wrong_issuer_is_caught_with_both_values(
    settings: Settings, idps: dict[str, FakeIdP], tiledesk_api: respx.Route
) -> None:
    idps["acme"].discovery_overrides["issuer"] = "https://sso.acme.test/auth/realms/acme"
    passed, lines = run(settings)
    assert not passed
    (fail,) = only(lines, "FAIL")
    assert fail.startswith("FAIL acme: issuer mismatch: ")
    assert "'https://sso.acme.test/auth/realms/acme'" in fail
    assert "'https://sso.acme.test/realms/acme'" in fail
    assert "base_url and realm" in fail
    assert "warn acme: keys not checked: the bridge cannot use this discovery document" in lines


def test_missing_endpoints_are_named(
    settings: Settings, idps: dict[str, FakeIdP], tiledesk_api: respx.Route
) -> None:
    idps["generic"].discovery_overrides.update(token_endpoint=None, end_session_endpoint=None)
    passed, lines = run(settings)
    assert not passed
    assert "FAIL generic: the discovery document lacks token_endpoint" in lines
    assert any(line.startswith("warn generic: no end_session_endpoint") for line in lines)


def test_no_end_session_endpoint_is_only_a_warning(
    settings: Settings, idps: dict[str, FakeIdP], tiledesk_api: respx.Route
) -> None:
    idps["google"].discovery_overrides["end_session_endpoint"] = None
    passed, lines = run(settings)
    assert passed
    assert (
        "warn google: no end_session_endpoint: signing out ends the bridge session, not the IdP's"
    ) in lines


def test_symmetric_algorithms_are_reported_as_refused(
    settings: Settings, idps: dict[str, FakeIdP], tiledesk_api: respx.Route
) -> None:
    idps["acme"].discovery_overrides["id_token_signing_alg_values_supported"] = ["RS256", "HS256"]
    idps["generic"].discovery_overrides["id_token_signing_alg_values_supported"] = ["HS256"]
    passed, lines = run(settings)
    assert not passed
    assert (
        "ok   acme: ID-token algorithms advertised: RS256, HS256; accepted: RS256; refused: HS256"
    ) in lines
    assert any(
        line.startswith("FAIL generic: ID-token algorithms advertised: HS256") for line in lines
    )


def test_jwks_without_a_fitting_key_fails(
    settings: Settings, idps: dict[str, FakeIdP], tiledesk_api: respx.Route
) -> None:
    idps["acme"].discovery_overrides["id_token_signing_alg_values_supported"] = ["ES256"]
    idps["acme"].published_keys = [idps["acme"].signing_key]
    passed, lines = run(settings)
    assert not passed
    assert any("FAIL acme: JWKS" in line and "none of a type" in line for line in lines)


def test_unreachable_discovery_fails(
    settings: Settings, idps: dict[str, FakeIdP], tiledesk_api: respx.Route
) -> None:
    idps["acme"].routes["discovery"].mock(side_effect=None, return_value=httpx.Response(503))
    idps["google"].routes["discovery"].mock(side_effect=httpx.ConnectTimeout("slow"))
    passed, lines = run(settings)
    assert not passed
    assert (
        "FAIL acme: discovery https://sso.acme.test/realms/acme/.well-known/openid-configuration: "
        "the discovery endpoint answered HTTP 503"
    ) in lines
    assert any(line.startswith("FAIL google: discovery") and "timed out" in line for line in lines)


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (httpx.Response(500), "answered HTTP 500, expected 200 or 401"),
        (httpx.Response(404), "answered HTTP 404: is [tiledesk].api_url the API base"),
        (httpx.Response(200, json={"success": False}), "answered 200 without success: true"),
        (httpx.ConnectTimeout("slow"), "did not answer within 10s"),
        (httpx.ConnectError("refused"), "cannot reach"),
    ],
)
def test_tiledesk_failures_are_explained(
    settings: Settings,
    idps: dict[str, FakeIdP],
    mock_idp: respx.MockRouter,
    answer: Any,
    expected: str,
) -> None:
    route = mock_idp.post(SIGNIN)
    if isinstance(answer, Exception):
        route.mock(side_effect=answer)
    else:
        route.mock(return_value=answer)
    passed, lines = run(settings)
    assert not passed
    (fail,) = only(lines, "FAIL")
    assert fail.startswith("FAIL tiledesk: ") and expected in fail


def test_api_url_setting_is_used(
    settings_data: dict[str, Any], idps: dict[str, FakeIdP], mock_idp: respx.MockRouter
) -> None:
    data = copy.deepcopy(settings_data)
    data["tiledesk"]["api_url"] = "https://tiledesk.acme.test/api/"
    route = mock_idp.post("https://tiledesk.acme.test/api/auth/signinWithCustomToken").mock(
        side_effect=fake_tiledesk
    )
    passed, _ = run(parse_settings(data))
    assert passed and route.called


def test_dev_provider_is_checked_in_process(
    settings_data: dict[str, Any], tiledesk_api: respx.Route
) -> None:
    data = copy.deepcopy(settings_data)
    data["providers"] = {"dev": {"preset": "dev"}}
    passed, lines = run(parse_settings(data))
    assert passed, lines
    assert (
        "ok   dev: dev preset: the development IdP is served in-process; checked in-process"
    ) in lines
    assert "ok   dev: issuer http://127.0.0.1:8000/dev-idp matches the settings" in lines
    assert any(line.startswith("ok   dev: JWKS ") for line in lines)
