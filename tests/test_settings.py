"""settings.toml: one validated model, env:/file: secrets, one line per problem naming the key."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from bridge.settings import SettingsError, load_settings, parse_settings
from tests.conftest import base_settings

REPO = Path(__file__).resolve().parent.parent


def problems(data: dict[str, Any], base_dir: Path | None = None) -> list[str]:
    with pytest.raises(SettingsError) as caught:
        parse_settings(data, base_dir)
    return caught.value.problems


def with_change(path: str, value: Any) -> dict[str, Any]:
    data = copy.deepcopy(base_settings())
    *parents, last = path.split(".")
    node = data
    for key in parents:
        node = node[key]
    if value is None:
        del node[last]
    else:
        node[last] = value
    return data


def test_valid_settings_resolve_defaults() -> None:
    settings = parse_settings(base_settings())
    assert settings.tiledesk.token_ttl == 8 * 3600
    assert settings.tiledesk.api_url == "https://api.tiledesk.com/v3"
    assert settings.session.same_site == "lax"
    assert settings.https_only is False
    assert settings.issuer("acme") == "https://sso.acme.test/realms/acme"
    assert settings.redirect_uri("acme") == "http://127.0.0.1:8000/callback/acme"
    assert settings.providers["acme"].leeway == 60
    assert settings.providers["acme"].timeout == 10


def test_https_public_url_makes_cookies_secure_by_default() -> None:
    settings = parse_settings(with_change("server.public_url", "https://chat.acme.com/"))
    assert settings.https_only is True
    assert settings.server.public_url == "https://chat.acme.com"


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("server.public_url", None, "server.public_url: required"),
        ("server.public_url", "ftp://x", "server.public_url: must be an http(s) URL"),
        ("server.port", "eighty", "server.port: "),
        ("server.colour", "blue", "server.colour: unknown key"),
        ("session.secret", "short", "session.secret: must be at least 32 characters"),
        ("tiledesk.project_id", "has space", "tiledesk.project_id: "),
        ("tiledesk.widget", {"projectid": "x"}, "tiledesk.widget: projectid is set by the bridge"),
        ("providers.acme.realm", None, "providers.acme.realm: required for the keycloak preset"),
        ("providers.acme.client_secret", None, "providers.acme.client_secret: required"),
        ("providers.acme.preset", "cognito", "providers.acme.preset: "),
        ("providers.acme.scopes", ["email"], "providers.acme.scopes: must include 'openid'"),
        (
            "providers.acme.authorize_params",
            {"nonce": "x"},
            "providers.acme.authorize_params: nonce",
        ),
        (
            "providers.generic.issuer",
            None,
            "providers.generic.issuer: required for the generic preset",
        ),
        (
            "providers.acme.access",
            {"email_domains": ["Acme.COM"]},
            "providers.acme.access.email_domains: ",
        ),
        ("providers.acme.claims", {"role": "admin"}, "providers.acme.claims.role: unknown key"),
    ],
)
def test_each_problem_names_its_key(path: str, value: Any, expected: str) -> None:
    lines = problems(with_change(path, value))
    assert any(line.startswith(expected) for line in lines), lines


def test_several_problems_are_reported_together_one_line_each() -> None:
    data = with_change("session.secret", "short")
    data["tiledesk"]["token_ttl"] = -5
    data["providers"]["acme"]["leeway"] = 9999
    lines = problems(data)
    assert len(lines) == 3
    assert all("\n" not in line and "Traceback" not in line for line in lines)


def test_provider_names_are_restricted() -> None:
    data = base_settings()
    data["providers"]["Bad Name"] = data["providers"].pop("acme")
    assert any("must match [a-z0-9-]" in line for line in problems(data))


def test_env_and_file_secrets_are_resolved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "tiledesk").write_text("from-a-file\n")
    monkeypatch.setenv("TEST_SESSION_SECRET", "x" * 40)
    data = base_settings()
    data["session"]["secret"] = "env:TEST_SESSION_SECRET"
    data["tiledesk"]["secret"] = "file:tiledesk"
    settings = parse_settings(data, tmp_path)
    assert settings.session.secret.get_secret_value() == "x" * 40
    assert settings.tiledesk.secret.get_secret_value() == "from-a-file"


def test_missing_env_and_file_are_one_line_each(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOPE_NOT_SET", raising=False)
    data = base_settings()
    data["session"]["secret"] = "env:NOPE_NOT_SET"
    data["tiledesk"]["secret"] = "file:/nonexistent/secret"
    lines = problems(data, tmp_path)
    assert lines == [
        "session.secret: environment variable NOPE_NOT_SET is not set",
        "tiledesk.secret: cannot read /nonexistent/secret: No such file or directory",
    ]


def test_secrets_never_appear_in_error_lines() -> None:
    data = with_change("session.secret", "tooshort-but-secret")
    assert not any("tooshort-but-secret" in line for line in problems(data))


def test_dev_preset_is_refused_off_loopback() -> None:
    data = base_settings()
    data["server"]["public_url"] = "https://chat.acme.com"
    data["providers"]["dev"] = {"preset": "dev"}
    assert any("loopback" in line for line in problems(data))


def test_bad_toml_is_one_clear_line(tmp_path: Path) -> None:
    file = tmp_path / "settings.toml"
    file.write_text("[server\npublic_url = 1")
    with pytest.raises(SettingsError) as caught:
        load_settings(file)
    assert len(caught.value.problems) == 1
    assert "not valid TOML" in caught.value.problems[0]


def test_missing_file_is_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(tmp_path / "nope.toml")
    assert caught.value.problems == [
        f"{tmp_path / 'nope.toml'}: cannot read the settings file: No such file or directory"
    ]


def test_repo_settings_file_runs_the_demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secrets = tmp_path / ".secrets"
    secrets.mkdir()
    (secrets / "session_secret").write_text("s" * 48 + "\n")
    (secrets / "tiledesk_secret").write_text("0b1c6c52-41f7-4a8f-9d50-6a3c2f1a7e11\n")
    (tmp_path / "settings.toml").write_text((REPO / "settings.toml").read_text())
    settings = load_settings(tmp_path / "settings.toml")
    assert settings.has_dev_provider
    assert settings.server.public_url == "http://127.0.0.1:8000"


def test_session_store_defaults_to_the_cookie_without_redis() -> None:
    session = parse_settings(base_settings()).session
    assert (session.store, session.redis_url, session.redis_timeout) == ("cookie", None, 1.0)


def test_redis_store_takes_the_url_and_a_password_from_a_file(tmp_path: Path) -> None:
    (tmp_path / "redis_password").write_text("redis-pw-from-a-file\n")
    data = base_settings()
    data["session"].update(
        {
            "store": "redis",
            "redis_url": "rediss://redis.acme.internal:6380/2",
            "redis_password": "file:redis_password",
        }
    )
    session = parse_settings(data, tmp_path).session
    assert session.store == "redis"
    assert session.redis_url is not None
    assert session.redis_url.get_secret_value() == "rediss://redis.acme.internal:6380/2"
    assert session.redis_password is not None
    assert session.redis_password.get_secret_value() == "redis-pw-from-a-file"


@pytest.mark.parametrize(
    ("session", "expected"),
    [
        ({"store": "redis"}, 'session.redis_url: required with store = "redis"'),
        ({"store": "memcached"}, "session.store: Input should be 'cookie' or 'redis'"),
        (
            {"redis_url": "http://redis:6379"},
            "session.redis_url: must be a redis://host[:port][/db] or rediss://… URL",
        ),
        ({"redis_password": "pw-without-a-url"}, "session.redis_password: set redis_url too"),
        ({"redis_url": "redis://r:6379", "redis_timeout": 0}, "session.redis_timeout: "),
    ],
)
def test_redis_settings_problems_name_their_key(session: dict[str, Any], expected: str) -> None:
    data = base_settings()
    data["session"].update(session)
    lines = problems(data)
    assert any(line.startswith(expected) for line in lines), lines


def test_a_bad_redis_url_is_reported_without_its_password() -> None:
    data = base_settings()
    data["session"]["redis_url"] = "http://:hunter2-secret@redis:6379"
    lines = problems(data)
    assert lines == ["session.redis_url: must be a redis://host[:port][/db] or rediss://… URL"]
