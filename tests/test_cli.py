"""``tiledesk-bridge``: exit codes 0 ok, 1 a check failed or refused, 2 bad usage or settings."""

from __future__ import annotations

import gc
import importlib.util
import io
import json
import logging
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import respx
from starlette.testclient import TestClient

from bridge import cli
from bridge.http_protocol import OneWriteProtocol
from bridge.settings import parse_settings
from bridge.web import create_app
from tests.conftest import PROJECT_ID, SESSION_SECRET, TILEDESK_SECRET, base_settings
from tests.idp import FakeIdP

AUDIENCE = f"https://tiledesk.com/projects/{PROJECT_ID}"
REPO = Path(__file__).resolve().parent.parent
SECRET_WARNING = (
    "warning: session.secret: a secret written in the settings file itself; write "
    '"env:NAME" to read it from the environment or "file:/path" from a file'
)
SETTINGS = f"""
[server]
public_url = "https://chat.acme.test"

[session]
secret = "env:TEST_SESSION_SECRET"

[tiledesk]
project_id = "{PROJECT_ID}"
secret = "file:tiledesk_secret"

[providers.acme]
preset = "keycloak"
base_url = "https://sso.acme.test"
realm = "acme"
client_id = "bridge-client"
client_secret = "env:ACME_CLIENT_SECRET"

[providers.acme.claims]
attributes = {{ groups = "groups" }}

[providers.acme.access]
email_domains = ["acme.test"]
allowed_groups = ["support"]
"""
CLAIMS = {
    "sub": "user-1",
    "email": "ada@acme.test",
    "email_verified": True,
    "given_name": "Ada",
    "family_name": "Lovelace",
    "groups": ["support", "staff"],
}


@pytest.fixture
def settings_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "tiledesk_secret").write_text(TILEDESK_SECRET + "\n")
    monkeypatch.setenv("ACME_CLIENT_SECRET", FakeIdP(issuer="x").client_secret)
    monkeypatch.setenv("TEST_SESSION_SECRET", SESSION_SECRET)
    path = tmp_path / "settings.toml"
    path.write_text(SETTINGS)
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = cli.main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


# --- check ---------------------------------------------------------------------------


def test_check_accepts_a_good_file_and_names_the_uris_to_register(
    settings_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = run(capsys, "check", "--settings", str(settings_file))
    assert status == 0, err
    assert "settings: ok (1 provider(s))" in out
    assert "issuer https://sso.acme.test/realms/acme" in out
    assert "redirect URI to register at the IdP: https://chat.acme.test/callback/acme" in out
    assert "post-logout redirect URI: https://chat.acme.test/" in out


def test_check_names_the_back_channel_logout_uri_and_warns_without_a_shared_store(
    settings_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = run(capsys, "check", "--settings", str(settings_file))
    assert status == 0, err
    assert "back-channel logout URI: https://chat.acme.test/backchannel-logout/acme" in out
    assert (
        "sessions: in the cookie; spent states and logout records in process memory\n"
        "  warning: with several workers or instances, a replayed sign-in or a back-channel "
        "logout is only known to the process that saw it: set [session] redis_url\n"
    ) in out


def test_check_names_the_shared_redis_without_its_password(
    settings_file: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", "rediss://:redis-password-123@redis.acme.internal/2")
    settings_file.write_text(
        SETTINGS.replace(
            'secret = "env:TEST_SESSION_SECRET"',
            'secret = "env:TEST_SESSION_SECRET"\nstore = "redis"\nredis_url = "env:REDIS_URL"',
        )
    )
    status, out, err = run(capsys, "check", "--settings", str(settings_file))
    assert status == 0, err
    assert (
        "sessions: in Redis behind an opaque ticket; spent states and logout records in "
        "Redis at rediss://redis.acme.internal:6379/2\n"
    ) in out
    assert "warning" not in out
    assert "redis-password-123" not in out + err


def test_check_reads_bridge_settings_from_the_environment(
    settings_file: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BRIDGE_SETTINGS", str(settings_file))
    assert run(capsys, "check")[0] == 0


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ('project_id = "64f0c0ffee00000000000001"', "", "tiledesk.project_id: required"),
        ('realm = "acme"', "realm = 7", "providers.acme.realm: "),
        ('realm = "acme"', 'realm = "acme"\nrelam = "acme"', "providers.acme.relam: unknown key"),
        (
            '"env:ACME_CLIENT_SECRET"',
            '"env:NO_SUCH_VARIABLE_HERE"',
            "providers.acme.client_secret: environment variable NO_SUCH_VARIABLE_HERE is not set",
        ),
        ('"file:tiledesk_secret"', '"file:missing_secret"', "tiledesk.secret: cannot read "),
        (
            'base_url = "https://sso.acme.test"\nrealm = "acme"',
            "",
            "providers.acme.base_url: required for the keycloak preset",
        ),
        ('preset = "keycloak"', 'preset = "entra"\ntenant = "common"', "providers.acme.tenant: "),
        ('preset = "keycloak"', 'preset = "keycloack"', "providers.acme.preset: "),
        ("[session]", "[session", "not valid TOML"),
    ],
)
def test_check_reports_each_problem_by_key_without_a_traceback(
    settings_file: Path,
    capsys: pytest.CaptureFixture[str],
    old: str,
    new: str,
    expected: str,
) -> None:
    text = settings_file.read_text()
    assert old in text
    settings_file.write_text(text.replace(old, new))
    status, out, err = run(capsys, "check", "--settings", str(settings_file))
    assert status == 2
    assert expected in err, err
    assert "Traceback" not in err and "Traceback" not in out
    assert all(": " in line for line in err.splitlines())


def test_check_lists_every_problem_one_line_each(
    settings_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = settings_file.read_text().replace("[server]", "[server]\ncolour = 'blue'")
    settings_file.write_text(text.replace('realm = "acme"', 'realm = "acme"\nleeway = "lots"'))
    status, _, err = run(capsys, "check", "--settings", str(settings_file))
    assert status == 2
    assert err.splitlines() == [
        "server.colour: unknown key (check the spelling)",
        "providers.acme.leeway: Input should be a valid integer, unable to parse string as an "
        "integer",
    ]


def test_check_warns_of_a_secret_written_in_the_file_and_still_passes(
    settings_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = settings_file.read_text()
    settings_file.write_text(text.replace('"env:TEST_SESSION_SECRET"', f'"{SESSION_SECRET}"'))
    status, out, err = run(capsys, "check", "--settings", str(settings_file))
    assert status == 0
    assert err.splitlines() == [SECRET_WARNING]
    assert SESSION_SECRET not in err + out
    assert "settings: ok (1 provider(s))" in out


def test_check_lists_the_secret_warning_after_the_problems(
    settings_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = settings_file.read_text().replace('"env:TEST_SESSION_SECRET"', f'"{SESSION_SECRET}"')
    settings_file.write_text(text.replace('client_id = "bridge-client"', 'clent_id = "x"'))
    status, _, err = run(capsys, "check", "--settings", str(settings_file))
    assert status == 2
    assert err.splitlines() == [
        "providers.acme.clent_id: unknown key; did you mean client_id?",
        SECRET_WARNING,
    ]


def test_serve_logs_the_secret_warning_once_at_start(
    settings_file: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr("uvicorn.run", lambda app, **kw: None)
    monkeypatch.setattr("bridge.logs.setup_logging", lambda *a, **kw: None)
    text = settings_file.read_text()
    settings_file.write_text(text.replace('"env:TEST_SESSION_SECRET"', f'"{SESSION_SECRET}"'))
    with caplog.at_level(logging.WARNING, logger="bridge"):
        assert run(capsys, "serve", "--settings", str(settings_file))[0] == 0
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        SECRET_WARNING
    ]


def test_the_readme_mint_example_runs_against_the_shipped_settings(tmp_path: Path) -> None:
    readme = (REPO / "README.md").read_text()
    # The runnable example is the one line that starts with the command itself.
    (command,) = [
        line for line in readme.splitlines() if line.startswith(".venv/bin/tiledesk-bridge mint ")
    ]
    argv = shlex.split(command)
    assert argv[0] == ".venv/bin/tiledesk-bridge"
    (tmp_path / ".secrets").mkdir()
    (tmp_path / ".secrets" / "session_secret").write_text("s" * 48 + "\n")
    (tmp_path / ".secrets" / "tiledesk_secret").write_text(TILEDESK_SECRET + "\n")
    (tmp_path / "settings.toml").write_text((REPO / "settings.toml").read_text())
    script = Path(sys.executable).parent / "tiledesk-bridge"
    env = {k: v for k, v in os.environ.items() if k != "BRIDGE_SETTINGS"}
    result = subprocess.run(
        [str(script), *argv[1:]],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "access: allowed" in result.stdout
    assert "\ntoken:\nJWT " in result.stdout


@pytest.mark.parametrize(
    ("public_url", "expected"),
    [
        (
            "https://acme.test/chat",
            "server.public_url: must be an origin without a path (found '/chat'): serve the "
            'bridge at its own host or sub-domain, e.g. public_url = "https://chat.acme.com"',
        ),
        (
            "http://chat.acme.test",
            "server.public_url: plain http off loopback sends the session cookie without "
            'Secure: write the https URL visitors use, public_url = "https://chat.acme.test" '
            "(behind a TLS-terminating proxy too, with the proxy in trusted_proxies), or set "
            "allow_plain_http = true for a closed network without TLS",
        ),
    ],
)
@pytest.mark.parametrize("command", ["check", "serve"])
def test_check_and_serve_refuse_a_public_url_the_pages_cannot_use(
    settings_file: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    command: str,
    public_url: str,
    expected: str,
) -> None:
    monkeypatch.setattr("uvicorn.run", lambda app, **kw: pytest.fail("must not serve"))
    text = settings_file.read_text()
    settings_file.write_text(text.replace('"https://chat.acme.test"', f'"{public_url}"'))
    status, _, err = run(capsys, command, "--settings", str(settings_file))
    assert status == 2
    assert err.splitlines() == [expected]


def test_check_accepts_the_default_port_as_the_same_site(
    settings_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = settings_file.read_text()
    settings_file.write_text(
        text.replace('"https://chat.acme.test"', '"https://Chat.Acme.test:443"')
    )
    status, out, _ = run(capsys, "check", "--settings", str(settings_file))
    assert status == 0
    assert "redirect URI to register at the IdP: https://chat.acme.test/callback/acme" in out


def test_check_of_a_missing_file_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = run(capsys, "check", "--settings", str(tmp_path / "nope.toml"))
    assert status == 2
    assert "cannot read the settings file" in err


def test_bad_usage_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        cli.main(["check", "--bogus"])
    assert caught.value.code == 2
    with pytest.raises(SystemExit) as caught:
        cli.main(["mint", "--claims", "{}"])
    assert caught.value.code == 2
    assert run(capsys, "serve", "--workers", "0")[0] == 2


def test_check_online_passes_and_fails_with_exit_codes(
    settings_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with respx.mock(assert_all_called=False) as router:
        idp = FakeIdP(issuer="https://sso.acme.test/realms/acme").install(router)
        tiledesk = router.post("https://api.tiledesk.com/v3/auth/signinWithCustomToken")
        tiledesk.mock(return_value=httpx.Response(200, json={"success": True}))
        status, out, _ = run(capsys, "check", "--online", "--settings", str(settings_file))
        assert status == 0, out
        assert "online checks: all passed" in out

        tiledesk.mock(return_value=httpx.Response(401, text="Unauthorized"))
        idp.discovery_overrides["issuer"] = "https://elsewhere.test"
        status, out, _ = run(capsys, "check", "--online", "--settings", str(settings_file))
        assert status == 1
        assert "FAIL acme: issuer mismatch" in out
        assert "FAIL tiledesk: Tiledesk refused the token" in out


# --- mint ----------------------------------------------------------------------------


def test_mint_explains_the_decision_the_payload_and_the_token(
    settings_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ("mint", "--settings", str(settings_file), "--provider", "acme")
    status, out, err = run(capsys, *args, "--claims", json.dumps(CLAIMS))
    assert status == 0, err
    lines = out.splitlines()
    assert lines[0] == "provider: acme (preset keycloak, issuer https://sso.acme.test/realms/acme)"
    assert lines[1:5] == [
        "access: allowed",
        "  email verified: email_verified is true",
        "  email domain of ada@acme.test is in email_domains",
        "  groups holds support from allowed_groups",
    ]
    assert "user id: from sub = 'user-1'" in lines
    payload_text = out.split("payload:\n", 1)[1].split("token:\n", 1)[0]
    payload = json.loads(payload_text)
    assert payload["_id"] == f"{PROJECT_ID}_acme_user-1"
    assert payload["attributes"] == {"groups": ["support", "staff"], "idp": "acme"}
    token = lines[-1]
    assert token.startswith("JWT ")
    assert (
        jwt.decode(token[4:], TILEDESK_SECRET, algorithms=["HS256"], audience=AUDIENCE) == payload
    )


def test_mint_reads_claims_from_a_file_and_from_stdin(
    settings_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    claims_file = tmp_path / "claims.json"
    claims_file.write_text(json.dumps(CLAIMS))
    args = ("mint", "--settings", str(settings_file), "--provider", "acme", "--claims")
    assert run(capsys, *args, str(claims_file))[0] == 0
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(CLAIMS)))
    assert run(capsys, *args, "-")[0] == 0


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"groups": ["staff"]}, "access: refused: no group in groups is in allowed_groups"),
        (
            {"email_verified": False},
            "access: refused: the email is not verified by the IdP (email_verified is not true)",
        ),
        ({"email": "ada@evil.test"}, "access: refused: the email's domain is not in email_domains"),
        ({"sub": None}, "mapping: refused: the verified claims have no 'sub'"),
    ],
)
def test_mint_refusal_exits_1_with_the_reason(
    settings_file: Path, capsys: pytest.CaptureFixture[str], change: dict[str, Any], reason: str
) -> None:
    claims = {k: v for k, v in {**CLAIMS, **change}.items() if v is not None}
    args = ("mint", "--settings", str(settings_file), "--provider", "acme")
    status, out, _ = run(capsys, *args, "--claims", json.dumps(claims))
    assert status == 1
    assert reason in out
    assert "JWT " not in out


@pytest.mark.parametrize(
    ("provider", "claims", "expected"),
    [
        ("nope", "{}", "--provider: no provider named 'nope' (have: acme)"),
        ("acme", "no-such-claims.json", "--claims: cannot read no-such-claims.json"),
        ("acme", "[1, 2]", "--claims: the claims must be a JSON object"),
        ("acme", "{]", "--claims: the claims are not valid JSON"),
    ],
)
def test_mint_bad_arguments_exit_2(
    settings_file: Path,
    capsys: pytest.CaptureFixture[str],
    provider: str,
    claims: str,
    expected: str,
) -> None:
    args = ("mint", "--settings", str(settings_file), "--provider", provider, "--claims", claims)
    status, _, err = run(capsys, *args)
    assert status == 2
    assert expected in err


# --- serve ---------------------------------------------------------------------------


def test_serve_runs_one_app_without_uvicorns_proxy_headers(
    settings_file: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[Any, dict[str, Any]]] = []
    monkeypatch.setattr("uvicorn.run", lambda app, **kw: calls.append((app, kw)))
    status, _, _ = run(capsys, "serve", "--settings", str(settings_file), "--port", "9001")
    assert status == 0
    ((app, options),) = calls
    assert not isinstance(app, str)
    assert options["port"] == 9001 and options["host"] == "127.0.0.1"
    assert options["proxy_headers"] is False
    assert options["server_header"] is False
    assert options["http"] is OneWriteProtocol  # each answer in one write


def test_the_benchmarks_bare_endpoint_runs_on_the_options_serve_uses(
    settings_file: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``make bench`` compares ``/auth`` with bench/bare.py "on the same uvicorn configuration":
    any option serve sets (the one-write protocol, say) and the bare endpoint lacks would
    flatter the bridge's ratio."""
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr("uvicorn.run", lambda app, **kw: calls.append(kw))
    status, _, _ = run(capsys, "serve", "--settings", str(settings_file), "--port", "9001")
    assert status == 0
    spec = importlib.util.spec_from_file_location("bench_bare", REPO / "bench" / "bare.py")
    assert spec is not None and spec.loader is not None
    bare = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bare)
    monkeypatch.setattr(sys, "argv", ["bare.py", "--port", "9002"])
    bare.main()
    serve_options, bare_options = calls
    assert {k: v for k, v in bare_options.items() if k != "port"} == {
        k: v for k, v in serve_options.items() if k != "port"
    }
    assert bare_options["port"] == 9002


def test_serve_moves_what_start_up_built_out_of_the_collectors_way(
    settings_file: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once the served app has started, its start-up objects are frozen (gc.freeze)."""
    calls: list[Any] = []
    monkeypatch.setattr("uvicorn.run", lambda app, **kw: calls.append(app))
    status, _, _ = run(capsys, "serve", "--settings", str(settings_file))
    assert status == 0
    ((app,),) = [calls]
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    try:
        with TestClient(app):
            frozen = gc.get_freeze_count()
    finally:
        gc.unfreeze()  # the test process keeps collecting as before
    assert frozen > 10_000
    with TestClient(create_app(parse_settings(base_settings()), warm_up=False)):
        assert gc.get_freeze_count() == 0  # an app built without it leaves the heap alone


def test_serve_with_workers_points_each_worker_at_the_same_file(
    settings_file: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[Any, dict[str, Any]]] = []
    monkeypatch.setattr("uvicorn.run", lambda app, **kw: calls.append((app, kw)))
    monkeypatch.delenv("BRIDGE_SETTINGS", raising=False)
    monkeypatch.chdir(settings_file.parent.parent)
    relative = Path(settings_file.parent.name) / settings_file.name
    status, _, _ = run(capsys, "serve", "--settings", str(relative), "--workers", "3")
    assert status == 0
    ((app, options),) = calls
    assert app == "bridge.asgi:app"
    assert options["workers"] == 3
    assert options["proxy_headers"] is False
    assert options["http"] is OneWriteProtocol
    assert os.environ["BRIDGE_SETTINGS"] == str(settings_file.resolve())


def test_serve_refuses_several_workers_with_the_dev_idp(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Any] = []
    monkeypatch.setattr("uvicorn.run", lambda app, **kw: calls.append(app))
    (tmp_path / ".secrets").mkdir()
    (tmp_path / ".secrets" / "session_secret").write_text("s" * 48)
    (tmp_path / ".secrets" / "tiledesk_secret").write_text("0b1c6c52-41f7-4a8f-9d50-6a3c2f1a7e11")
    demo = tmp_path / "settings.toml"
    demo.write_text((Path(__file__).resolve().parent.parent / "settings.toml").read_text())
    status, _, err = run(capsys, "serve", "--settings", str(demo), "--workers", "2")
    assert status == 2
    assert "one worker" in err
    assert calls == []


def test_serve_with_bad_settings_exits_2(
    settings_file: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("uvicorn.run", lambda app, **kw: pytest.fail("must not serve"))
    settings_file.write_text(SETTINGS.replace("[server]", "[server]\nport = 0"))
    status, _, err = run(capsys, "serve", "--settings", str(settings_file))
    assert status == 2
    assert err.startswith("server.port: ")
