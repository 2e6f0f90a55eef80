"""settings.toml: one validated model, env:/file: secrets, one line per problem naming the key."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from pydantic import BaseModel, SecretStr

from bridge.settings import (
    Settings,
    SettingsError,
    _secret_fields,
    literal_secrets,
    load_settings,
    parse_settings,
)
from tests.conftest import SESSION_SECRET, base_settings

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


def _provider_toml(tmp_path: Path, *lines: str) -> Path:
    """A settings.toml whose one provider ends with these lines."""
    file = tmp_path / "settings.toml"
    file.write_text(
        f"""
[server]
public_url = "http://127.0.0.1:8000"

[session]
secret = "{SESSION_SECRET}"

[tiledesk]
project_id = "64f0c0ffee00000000000001"
secret = "0b1c6c52-41f7-4a8f-9d50-6a3c2f1a7e11"

[providers.acme]
preset = "generic"
issuer = "https://idp.acme.test"
client_id = "bridge"
client_secret = "a-client-secret"
"""
        + "\n".join(lines)
    )
    return file


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("", "auto"),
        ("userinfo = true", True),
        ("userinfo = false", False),
        ('userinfo = "auto"', "auto"),
    ],
    ids=["default", "true", "false", "auto"],
)
def test_userinfo_takes_true_false_or_auto_and_defaults_to_auto(
    tmp_path: Path, line: str, expected: bool | str
) -> None:
    userinfo = load_settings(_provider_toml(tmp_path, line)).providers["acme"].userinfo
    assert userinfo == expected
    assert type(userinfo) is type(expected)


@pytest.mark.parametrize(
    "value",
    ['"sometimes"', '"Auto"', '"true"', '""', "1", "0", "1.0", '["auto"]', "{ auto = true }"],
)
def test_a_bad_userinfo_value_is_refused_naming_the_key(tmp_path: Path, value: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(_provider_toml(tmp_path, f"userinfo = {value}", "leeway = 9999"))
    assert caught.value.problems == [
        "providers.acme.leeway: Input should be less than or equal to 300",
        'providers.acme.userinfo: must be true, false or "auto"',
    ]


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
        (
            {"redis_url": "redis+sentinel://s1:26379,s2:26379"},
            "session.redis_url: a Sentinel URL names the primary after the hosts: "
            "redis+sentinel://host[:port][,host[:port]…]/<primary>[/<db>]",
        ),
        (
            {"redis_url": "redis+sentinel://s1:26379,:26379/mymaster"},
            "session.redis_url: a Sentinel URL names the primary after the hosts: ",
        ),
        (
            {"redis_url": "redis+sentinel://s1:port/mymaster"},
            "session.redis_url: a Sentinel URL names the primary after the hosts: ",
        ),
        (
            {"redis_url": "redis+sentinel://s1/mymaster/db"},
            "session.redis_url: a Sentinel URL names the primary after the hosts: ",
        ),
        (
            {"redis_url": "redis+sentinel://:pw@s1/mymaster"},
            "session.redis_url: put the password in redis_password, not in a Sentinel URL",
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


def test_a_sentinel_url_names_the_sentinels_the_primary_and_the_database() -> None:
    from bridge.settings import parse_sentinel_url

    data = base_settings()
    url = "redis+sentinel://s1.acme.internal:26380,10.0.0.2,[::1]:26381/mymaster/2"
    data["session"].update({"store": "redis", "redis_url": url})
    session = parse_settings(data).session
    assert session.redis_url is not None
    target = parse_sentinel_url(session.redis_url.get_secret_value())
    assert target.sentinels == (("s1.acme.internal", 26380), ("10.0.0.2", 26379), ("::1", 26381))
    assert (target.primary, target.db) == ("mymaster", 2)
    assert parse_sentinel_url("redis+sentinel://s1/mymaster").db == 0


def test_a_bad_redis_url_is_reported_without_its_password() -> None:
    data = base_settings()
    data["session"]["redis_url"] = "http://:hunter2-secret@redis:6379"
    lines = problems(data)
    assert lines == [
        "session.redis_url: must be a redis://host[:port][/db] or rediss://… URL "
        "(or redis+sentinel://… for Redis Sentinel)"
    ]


# --- public_url and [sites]: one spelling of each origin ---------------------------


def test_public_url_drops_the_default_port_and_lower_cases_scheme_and_host() -> None:
    data = with_change("server.public_url", "HTTPS://Chat.Acme.COM:443/")
    data["sites"] = {"https://Shop.acme.com:443": {}, "http://localhost:8080": {}}
    settings = parse_settings(data)
    server = settings.server
    assert server.public_url == "https://chat.acme.com"
    assert server.origin == "https://chat.acme.com"
    assert list(settings.sites) == ["https://shop.acme.com", "http://localhost:8080"]
    loopback = parse_settings(with_change("server.public_url", "http://127.0.0.1:80")).server
    assert loopback.public_url == "http://127.0.0.1"


def test_public_url_with_a_path_is_refused_saying_what_to_write() -> None:
    assert problems(with_change("server.public_url", "https://acme.com/chat")) == [
        "server.public_url: must be an origin without a path (found '/chat'): serve the "
        'bridge at its own host or sub-domain, e.g. public_url = "https://chat.acme.com"'
    ]


def test_plain_http_off_loopback_is_refused_saying_what_to_write() -> None:
    assert problems(with_change("server.public_url", "http://chat.acme.com")) == [
        "server.public_url: plain http off loopback sends the session cookie without Secure: "
        'write the https URL visitors use, public_url = "https://chat.acme.com" (behind a '
        "TLS-terminating proxy too, with the proxy in trusted_proxies), or set "
        "allow_plain_http = true for a closed network without TLS"
    ]


def test_allow_plain_http_accepts_a_closed_network_without_secure_cookies() -> None:
    data = with_change("server.public_url", "http://chat.acme.internal")
    data["server"]["allow_plain_http"] = True
    settings = parse_settings(data)
    assert settings.server.public_url == "http://chat.acme.internal"
    assert settings.https_only is False


def test_plain_http_is_reported_along_with_the_other_server_faults() -> None:
    data = with_change("server.public_url", "http://chat.acme.com")
    data["server"]["port"] = "eighty"
    lines = problems(data)
    assert [line.split(": ", 1)[0] for line in lines] == ["server.port", "server.public_url"]


# --- every problem in one run -------------------------------------------------------


def test_a_misspelled_key_hides_no_other_problem_and_gets_a_suggestion() -> None:
    data = base_settings()
    acme = data["providers"]["acme"]
    acme["clent_id"] = acme.pop("client_id")
    del acme["realm"]
    data["providers"]["generic"]["issuer"] = "not-a-url"
    data["session"]["max_age"] = 5
    data["sever"] = {}
    assert problems(data) == [
        "session.max_age: Input should be greater than or equal to 60",
        "providers.acme.clent_id: unknown key; did you mean client_id?",
        "providers.generic.issuer: must be an http(s) URL without query or fragment, "
        "got 'not-a-url'",
        "sever: unknown key; did you mean server?",
        "providers.acme.realm: required for the keycloak preset (the realm's name)",
    ]


def test_a_misspelled_secret_key_is_not_also_reported_as_missing() -> None:
    data = base_settings()
    acme = data["providers"]["acme"]
    acme["client_secrt"] = acme.pop("client_secret")
    assert problems(data) == [
        "providers.acme.client_secrt: unknown key; did you mean client_secret?"
    ]


def test_a_provider_reports_every_missing_preset_parameter_at_once() -> None:
    data = base_settings()
    data["providers"]["acme"] = {"preset": "keycloak", "base_url": "https://sso.acme.test"}
    assert problems(data) == [
        "providers.acme.client_id: required",
        'providers.acme.client_secret: required (use "env:NAME" or "file:/path")',
        "providers.acme.realm: required for the keycloak preset (the realm's name)",
    ]


def test_an_unknown_key_far_from_any_known_one_asks_to_check_the_spelling() -> None:
    assert problems(with_change("server.colour", "blue")) == [
        "server.colour: unknown key (check the spelling)"
    ]


def test_the_dev_preset_off_loopback_is_reported_despite_other_faults() -> None:
    data = with_change("server.public_url", "https://chat.acme.com")
    data["providers"]["dev"] = {"preset": "dev"}
    data["tiledesk"]["token_ttl"] = -5
    assert problems(data) == [
        "tiledesk.token_ttl: Input should be greater than or equal to 60",
        "providers: the dev preset signs in anyone and is refused unless server.public_url "
        "is a loopback address (127.0.0.1, localhost)",
    ]


# --- secrets written in the file ----------------------------------------------------


def _warning(key: str) -> str:
    return (
        f"warning: {key}: a secret written in the settings file itself; write "
        '"env:NAME" to read it from the environment or "file:/path" from a file'
    )


def test_secrets_written_in_the_file_are_warnings_naming_each_key() -> None:
    settings = parse_settings(base_settings())
    assert settings.warnings == (
        _warning("session.secret"),
        _warning("tiledesk.secret"),
        _warning("providers.acme.client_secret"),
        _warning("providers.google.client_secret"),
        _warning("providers.generic.client_secret"),
    )
    assert not any(SESSION_SECRET in line for line in settings.warnings)


def test_env_and_file_secrets_raise_no_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "tiledesk").write_text("from-a-file\n")
    monkeypatch.setenv("TEST_SESSION_SECRET", "x" * 40)
    monkeypatch.setenv("TEST_CLIENT_SECRET", "c" * 40)
    data = base_settings()
    data["session"]["secret"] = "env:TEST_SESSION_SECRET"
    data["tiledesk"]["secret"] = "file:tiledesk"
    for provider in data["providers"].values():
        provider["client_secret"] = "env:TEST_CLIENT_SECRET"
    assert parse_settings(data, tmp_path).warnings == ()


def test_the_secret_keys_come_from_the_model_lists_of_secrets_included() -> None:
    class Rotating(BaseModel):
        secret: SecretStr
        previous_secrets: tuple[SecretStr, ...] = ()
        name: str = ""

    assert list(_secret_fields(Rotating, ("session",))) == [
        ("session", "secret"),
        ("session", "previous_secrets"),
    ]
    assert set(_secret_fields(Settings, ())) >= {
        ("session", "secret"),
        ("tiledesk", "secret"),
        ("providers", "*", "client_secret"),
    }


def test_a_literal_secret_in_a_list_warns_once_for_the_list() -> None:
    warnings = literal_secrets({"providers": {"a": {"client_secret": "x"}}})
    assert warnings == [_warning("providers.a.client_secret")]


def test_bad_settings_carry_the_secret_warnings_too() -> None:
    with pytest.raises(SettingsError) as caught:
        parse_settings(with_change("session.max_age", 5))
    assert _warning("session.secret") in caught.value.warnings


def test_a_redis_url_warns_as_a_literal_secret_only_when_it_holds_a_password() -> None:
    data = base_settings()
    data["session"]["redis_url"] = "redis://redis.acme.internal:6379/0"
    assert _warning("session.redis_url") not in parse_settings(data).warnings
    data["session"]["redis_url"] = "redis://:hunter2-secret@redis.acme.internal:6379/0"
    assert _warning("session.redis_url") in parse_settings(data).warnings
    data["session"]["redis_password"] = "hunter2-secret"
    assert _warning("session.redis_password") in parse_settings(data).warnings


def test_file_secret_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "random-key").write_bytes(b"\xff\xfe\x00\x81 raw random bytes")
    data = base_settings()
    data["tiledesk"]["secret"] = "file:random-key"
    assert problems(data, tmp_path) == [
        f"tiledesk.secret: cannot read {tmp_path / 'random-key'}: not UTF-8 text "
        "(write the secret as text, e.g. the output of `openssl rand -base64 48`)"
    ]


def test_file_secret_path_with_a_nul_character_is_one_line(tmp_path: Path) -> None:
    data = base_settings()
    data["tiledesk"]["secret"] = "file:/run/secrets/a\x00b"
    assert problems(data, tmp_path) == [
        "tiledesk.secret: cannot read '/run/secrets/a\\x00b': a path cannot hold a NUL character"
    ]


def test_file_secret_under_an_unknown_users_home_is_one_line(tmp_path: Path) -> None:
    data = base_settings()
    data["tiledesk"]["secret"] = "file:~no-such-user-zz/secret"
    assert problems(data, tmp_path) == [
        "tiledesk.secret: cannot read ~no-such-user-zz/secret: no such user's home directory"
    ]


# --- any TOML document: lines naming keys, never a traceback ------------------------------

#: Every key the model knows, so generated tables reach the deep checks, plus any text.
_KNOWN_KEYS = sorted(
    {name for path in _secret_fields(Settings, ()) for name in path}
    | {
        name
        for model in BaseModel.__subclasses__()
        if model.__module__ == "bridge.settings"
        for sub in (model, *model.__subclasses__())
        for name in sub.model_fields
    }
    | {"acme", "dev", "*"}
)
_KEYS = st.sampled_from(_KNOWN_KEYS) | st.text(min_size=1, max_size=8)
_BASE = base_settings()
_STRINGS = st.sampled_from(
    [
        "",
        "env:NOPE_NOT_SET",
        "env:HOME",
        "env:",
        "file:",
        "file:/",
        "file:~no-such-user-zz/x",
        "file:/dev/null",
        "file:/proc/self/cmdline",
        "https://[x",
        "https://chat.acme.com:99999",
        "http://127.0.0.1:8000/path",
        "https://chat.acme.com",
        "keycloak",
        "dev",
        "none",
        "x" * 40,
    ]
) | st.text(max_size=20)
_LEAVES = (
    _STRINGS
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats()
    | st.booleans()
    | st.datetimes()
    | st.dates()
    | st.times()
)
_TOML_VALUES = st.recursive(
    _LEAVES,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_KEYS, inner, max_size=5),
    max_leaves=25,
)


def _graft(base: dict[str, Any], path: list[str], value: Any) -> dict[str, Any]:
    node: Any = base
    for key in path[:-1]:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    node[path[-1]] = value
    return base


@hypothesis_settings(max_examples=300, deadline=None)
@given(
    document=st.dictionaries(_KEYS, _TOML_VALUES, max_size=6)
    | st.builds(
        _graft,
        st.builds(base_settings),
        st.lists(_KEYS, min_size=1, max_size=4),
        _TOML_VALUES,
    )
)
def test_any_toml_document_gives_settings_or_lines_naming_keys(document: dict[str, Any]) -> None:
    try:
        parse_settings(document, Path("/nonexistent-base-dir"))
    except SettingsError as exc:
        assert exc.problems
        for line in exc.problems + exc.warnings:
            assert "\n" not in line
            key, sep, message = line.partition(": ")
            assert sep and key and message, line


@pytest.mark.parametrize(
    ("document", "line"),
    [
        ({": ": []}, '": ": unknown key (check the spelling)'),
        ({"server": {"a b": 1}}, 'server."a b": unknown key (check the spelling)'),
    ],
)
def test_a_key_that_toml_must_quote_is_named_quoted(document: dict[str, Any], line: str) -> None:
    """Found by the property above: a key ": " gave the line ": : unknown key"."""
    with pytest.raises(SettingsError) as raised:
        parse_settings(document, Path("/nonexistent-base-dir"))
    assert line in raised.value.problems


def test_same_site_none_with_https_only_off_is_refused() -> None:
    """Browsers drop a ``SameSite=None`` cookie without ``Secure``: nobody could sign in."""
    data = with_change("server.public_url", "https://chat.acme.com")
    data["session"].update(same_site="none", https_only=False)
    assert problems(data) == [
        "session.same_site: 'none' needs the cookie's Secure flag: leave https_only out "
        "(or true), browsers drop a SameSite=None cookie without it"
    ]


def test_same_site_none_on_plain_http_is_refused() -> None:
    data = with_change("session.same_site", "none")
    assert problems(data) == ["session.same_site: 'none' needs an https public_url"]


def test_a_key_with_a_control_character_is_still_one_line() -> None:
    data = base_settings()
    data["server"]["public\nurl"] = "https://chat.acme.com"
    data["tiledesk"]["a\rb"] = "env:NOPE_NOT_SET"
    assert problems(data) == [
        'tiledesk."a\\rb": environment variable NOPE_NOT_SET is not set',
        'server."public\\nurl": unknown key; did you mean public_url?',
    ]
