"""``check --online``: discovery, keys and Tiledesk's verdict, reported per provider."""

from __future__ import annotations

import asyncio
import copy
import datetime
import http.server
import ipaddress
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import httpx
import jwt
import pytest
import respx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bridge.selftest import Report, check_tiledesk, run_online_checks
from bridge.settings import Settings, parse_settings
from bridge.web import outbound_transport
from tests.conftest import PROJECT_ID, TILEDESK_SECRET, base_settings
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


def test_what_userinfo_does_is_reported_per_provider(
    settings_data: dict[str, Any], idps: dict[str, FakeIdP], tiledesk_api: respx.Route
) -> None:
    settings_data["providers"]["google"]["userinfo"] = True
    settings_data["providers"]["generic"]["userinfo"] = False
    passed, lines = run(parse_settings(settings_data))
    assert passed, lines
    assert (
        "ok   acme: userinfo_endpoint published; called only when the ID token lacks a claim "
        "the mapping or access rules read "
        "(email, email_verified, family_name, given_name, groups, name, sub)"
    ) in lines
    assert (
        "ok   google: userinfo_endpoint published, called on every sign-in (userinfo = true)"
    ) in lines
    assert "ok   generic: userinfo_endpoint published, not used (userinfo = false)" in lines


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
        (httpx.ReadTimeout("slow"), f"{SIGNIN} did not answer within 10s"),
        (
            httpx.ConnectTimeout("slow"),
            "no connection to api.tiledesk.com within 10s: a firewall may be dropping the "
            "traffic; check [tiledesk].api_url, and if this machine reaches the Internet only "
            "through a proxy, set [server] outbound_proxy",
        ),
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


# --- an unreachable Tiledesk, over real sockets: which layer failed, and the proxy ----------


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def tiledesk_only(api_url: str, proxy: str | None = None) -> str:
    """Run the Tiledesk check alone over the bridge's real transport; return its one line."""
    data = base_settings()
    data["tiledesk"]["api_url"] = api_url
    if proxy is not None:
        data["server"]["outbound_proxy"] = proxy
    settings = parse_settings(data)
    lines: list[str] = []
    asyncio.run(check_tiledesk(settings, outbound_transport(settings), Report(lines.append)))
    (line,) = lines
    return line


class _RefusingProxy(http.server.BaseHTTPRequestHandler):
    """An egress proxy that refuses every tunnel, or asks for credentials."""

    status: ClassVar[int] = 403

    def do_CONNECT(self) -> None:
        self.send_response(self.status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self) -> None:
        self.do_CONNECT()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def refusing_proxy() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RefusingProxy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_name_that_does_not_resolve_is_reported_as_dns() -> None:
    line = tiledesk_only("https://api.tiledesk.invalid/v3")
    assert line == (
        "FAIL tiledesk: DNS: the name of api.tiledesk.invalid does not resolve from this "
        "machine: check [tiledesk].api_url and this machine's DNS; without direct Internet "
        "access, set [server] outbound_proxy"
    )


def test_a_refused_connection_suggests_the_outbound_proxy_when_none_is_set() -> None:
    line = tiledesk_only(f"http://127.0.0.1:{_closed_port()}/v3")
    assert line == (
        "FAIL tiledesk: the connection to 127.0.0.1 was refused: nothing listens on that host "
        "and port; check [tiledesk].api_url, and if this machine reaches the Internet only "
        "through a proxy, set [server] outbound_proxy"
    )


def test_an_unreachable_outbound_proxy_is_named_without_its_credentials() -> None:
    port = _closed_port()
    line = tiledesk_only(API, proxy=f"http://egress:hunter2-secret@127.0.0.1:{port}")
    assert line == (
        f"FAIL tiledesk: the connection to the outbound proxy http://127.0.0.1:{port} was "
        "refused: nothing listens on that host and port; check that [server] outbound_proxy "
        "is right and lets Tiledesk through"
    )


def test_a_proxy_refusing_the_tunnel_is_told_apart_from_tiledesk_refusing(
    refusing_proxy: str,
) -> None:
    _RefusingProxy.status = 403
    line = tiledesk_only(API, proxy=refusing_proxy)
    assert line.startswith(
        f"FAIL tiledesk: the outbound proxy {refusing_proxy} refused to open a tunnel to "
        "api.tiledesk.com ("
    )
    assert line.endswith("): allow api.tiledesk.com on the proxy, or fix [server] outbound_proxy")


def test_a_proxy_asking_for_credentials_says_so(refusing_proxy: str) -> None:
    _RefusingProxy.status = 407
    line = tiledesk_only("http://api.tiledesk.test/v3", proxy=refusing_proxy)
    assert line == (
        f"FAIL tiledesk: the outbound proxy {refusing_proxy} asks for credentials (HTTP 407): "
        "give them in [server] outbound_proxy, written as env: or file:"
    )


def test_tls_to_a_plain_http_port_is_reported_as_tls(refusing_proxy: str) -> None:
    port = refusing_proxy.rsplit(":", 1)[1]
    line = tiledesk_only(f"https://127.0.0.1:{port}/v3")
    assert line.startswith("FAIL tiledesk: TLS: the handshake with 127.0.0.1 failed (")
    assert line.endswith("): check that [tiledesk].api_url is https:// on an HTTPS port")


def _self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that no CA signed, as a TLS-inspecting proxy would present."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "inspecting proxy")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_an_untrusted_certificate_points_at_tls_inspection(tmp_path: Path) -> None:
    cert_path, key_path = _self_signed(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RefusingProxy)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        line = tiledesk_only(f"https://127.0.0.1:{server.server_address[1]}/v3")
    finally:
        server.shutdown()
        server.server_close()
    assert line == (
        "FAIL tiledesk: TLS: the certificate presented for 127.0.0.1 is not trusted "
        "(self-signed certificate): a proxy or firewall that inspects TLS presents its own "
        "certificate, which the bridge does not trust; let the proxy pass the connection to "
        "Tiledesk untouched"
    )


def test_a_tiledesk_refusal_is_not_reported_as_network_trouble(
    settings_data: dict[str, Any], idps: dict[str, FakeIdP], mock_idp: respx.MockRouter
) -> None:
    data = copy.deepcopy(settings_data)
    data["server"]["outbound_proxy"] = "http://proxy.acme.test:3128"
    mock_idp.post(SIGNIN).mock(return_value=httpx.Response(502))
    passed, lines = run(parse_settings(data))
    assert not passed
    assert only(lines, "FAIL") == [
        f"FAIL tiledesk: {SIGNIN} answered HTTP 502 (possibly the outbound proxy "
        "http://proxy.acme.test:3128, not Tiledesk), expected 200 or 401"
    ]
