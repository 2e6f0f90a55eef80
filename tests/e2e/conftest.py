"""The real-browser suite: Chromium, a real OpenID Provider, the bridge served by uvicorn.

Three processes per session: the OP (panva's oidc-provider, `op/server.js`, set up like a
Keycloak realm), the bridge (`python -m bridge serve`), and a static server for the Tiledesk
widget stand-in (`widget/launch.js`). Missing Chromium or node modules skip the suite, unless
BRIDGE_REQUIRE_BROWSER=1 (CI), where they fail it.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import secrets
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.servers import free_port, stop_process, tail, unavailable

E2E_DIR = Path(__file__).resolve().parent
REPO_ROOT = E2E_DIR.parents[1]
OP_DIR = E2E_DIR / "op"
WIDGET_DIR = E2E_DIR / "widget"
SITE_DIR = E2E_DIR / "site"
ARTIFACTS = E2E_DIR / "artifacts"

CHROMIUM = os.environ.get("BRIDGE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Nothing but loopback: a page that reaches out to the internet fails fast, not slowly.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
]

PROJECT_ID = "64f0c0ffee00000000000001"
REALM = "acme"
CLIENT_ID = "bridge"
START_TIMEOUT = 20.0


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def logs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("e2e-logs")


# --- the Tiledesk widget stand-in -------------------------------------------------------------


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        super().end_headers()


@pytest.fixture(scope="session")
def widget_origin() -> Iterator[str]:
    """Serves tests/e2e/widget/ as if it were widget.tiledesk.com/v5/."""
    handler = functools.partial(_QuietHandler, directory=str(WIDGET_DIR))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


AXE = E2E_DIR / "axe" / "node_modules" / "axe-core" / "axe.min.js"


@pytest.fixture(scope="session")
def axe() -> Path:
    """axe-core from npm, for the accessibility checks of every page a person sees."""
    if not AXE.is_file():
        unavailable("tests/e2e/axe/node_modules is missing: run `make e2e-deps`")
    return AXE


# --- the customer websites that embed the chat --------------------------------------------------


@dataclass
class Site:
    """A static website with the embed snippet, served under a strict CSP of its own."""

    url: str
    csp: str


class _SiteHandler(_QuietHandler):
    """Serves tests/e2e/site/, with ``__BRIDGE__`` in its pages replaced by the bridge's URL."""

    bridge_url = ""
    csp = ""

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0].split("#", 1)[0]
        if path == "/":
            path = "/index.html"
        file = (SITE_DIR / path.lstrip("/")).resolve()
        if file.parent != SITE_DIR or not file.is_file():
            self.send_error(404)
            return
        body = file.read_bytes()
        types = {".html": "text/html; charset=utf-8", ".js": "text/javascript", ".css": "text/css"}
        if file.suffix == ".html":
            body = body.replace(b"__BRIDGE__", self.bridge_url.encode())
        self.send_response(200)
        self.send_header("Content-Type", types.get(file.suffix, "application/octet-stream"))
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Security-Policy", self.csp)
        self.end_headers()
        self.wfile.write(body)


def _site_csp(bridge_url: str, widget_origin: str) -> str:
    """The site allows the bridge (and the widget's own origin) and nothing else."""
    return (
        f"default-src 'self'; script-src 'self' {bridge_url} {widget_origin}; "
        f"connect-src 'self' {bridge_url}; frame-src {bridge_url}; style-src 'self'; "
        "img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'"
    )


@contextlib.contextmanager
def _serve_site(host: str, bridge_url: str, widget_origin: str) -> Iterator[Site]:
    csp = _site_csp(bridge_url, widget_origin)
    handler = type("Handler", (_SiteHandler,), {"bridge_url": bridge_url, "csp": csp})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Site(f"http://{host}:{server.server_address[1]}", csp)
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session")
def site(bridge_port: int, widget_origin: str) -> Iterator[Site]:
    """Listed in [sites], on http://localhost: another site than the bridge's 127.0.0.1."""
    with _serve_site("localhost", f"http://127.0.0.1:{bridge_port}", widget_origin) as served:
        yield served


@pytest.fixture(scope="session")
def same_site(bridge_port: int, widget_origin: str) -> Iterator[Site]:
    """Listed in [sites], on 127.0.0.1 like the bridge: same site, another origin."""
    with _serve_site("127.0.0.1", f"http://127.0.0.1:{bridge_port}", widget_origin) as served:
        yield served


@pytest.fixture(scope="session")
def foreign_site(bridge_port: int, widget_origin: str) -> Iterator[Site]:
    """The same pages on an origin that is not in [sites]."""
    with _serve_site("localhost", f"http://127.0.0.1:{bridge_port}", widget_origin) as served:
        yield served


# --- the OpenID Provider -----------------------------------------------------------------------


@dataclass
class OP:
    issuer: str
    client_id: str
    client_secret: str
    log: Path

    @property
    def origin(self) -> str:
        return self.issuer.split("/realms/")[0]


@pytest.fixture(scope="session")
def bridge_port() -> int:
    return free_port()


@pytest.fixture(scope="session")
def op(bridge_port: int, logs_dir: Path) -> Iterator[OP]:
    with start_op(f"http://127.0.0.1:{bridge_port}", logs_dir / "op.log") as started:
        yield started


@contextlib.contextmanager
def start_op(public_url: str, log: Path, *, backchannel_logout: bool = False) -> Iterator[OP]:
    """The OP, with the bridge at ``public_url`` as its one client."""
    node = shutil.which("node")
    if node is None:
        unavailable("node is not installed (the OpenID Provider runs on Node.js)")
    if not (OP_DIR / "node_modules" / "oidc-provider").is_dir():
        unavailable("tests/e2e/op/node_modules is missing: run `npm ci` in tests/e2e/op")
    client_secret = secrets.token_urlsafe(32)
    env = {
        **os.environ,
        "OP_PORT": "0",
        "OP_REALM": REALM,
        "OP_CLIENT_ID": CLIENT_ID,
        "OP_CLIENT_SECRET": client_secret,
        "OP_REDIRECT_URIS": f"{public_url}/callback/acme",
        "OP_POST_LOGOUT_REDIRECT_URIS": f"{public_url}/",
    }
    if backchannel_logout:
        env["OP_BACKCHANNEL_LOGOUT_URI"] = f"{public_url}/backchannel-logout/acme"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [str(node), "server.js"],
            cwd=OP_DIR,
            env=env,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
    try:
        issuer = _read_ready_line(proc, log)
        yield OP(issuer=issuer, client_id=CLIENT_ID, client_secret=client_secret, log=log)
    finally:
        stop_process(proc)


def _read_ready_line(proc: subprocess.Popen[str], log: Path) -> str:
    found: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("ready ") and not found:
                found.append(line.split()[1])

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + START_TIMEOUT
    while not found:
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_process(proc)
            pytest.fail(f"the OpenID Provider did not start:\n{tail(log)}", pytrace=False)
        time.sleep(0.05)
    return found[0]


# --- the bridge --------------------------------------------------------------------------------


@dataclass
class Bridge:
    url: str
    project_id: str
    tiledesk_secret: str
    settings: Path
    log: Path
    op: OP
    audience: str = field(init=False)

    def __post_init__(self) -> None:
        self.audience = f"https://tiledesk.com/projects/{self.project_id}"


def _settings_toml(
    public_url: str, widget_url: str, op: OP, tiledesk_secret: str, sites: list[str]
) -> str:
    # The first site requires sign-in; the others offer it (anonymous chat until then).
    site_tables = "".join(
        f'[sites."{origin}"]\nproviders = ["acme"]\n'
        f'sign_in = "{"required" if i == 0 else "offered"}"\n\n'
        for i, origin in enumerate(sites)
    )
    return f"""\
[server]
public_url = "{public_url}"

{site_tables}

[session]
secret = "{secrets.token_urlsafe(48)}"

[tiledesk]
project_id = "{PROJECT_ID}"
secret = "{tiledesk_secret}"
widget_url = "{widget_url}"

[tiledesk.widget]
persistence = "local"

[providers.acme]
preset = "keycloak"
display_name = "Acme SSO"
base_url = "{op.origin}"
realm = "{REALM}"
client_id = "{op.client_id}"
client_secret = "{op.client_secret}"
scopes = ["openid", "email", "profile", "groups"]
# This OP puts the scope claims in the ID token too, so "auto" would never ask userinfo:
# every browser sign-in asks it here, so the certified OP's userinfo stays exercised.
userinfo = true

[providers.acme.claims]
attributes = {{ groups = "groups" }}

[providers.acme.access]
email_domains = ["acme.test"]

[providers.dev]
preset = "dev"

[providers.dev.claims]
attributes = {{ groups = "groups" }}
"""


def _bridge_available() -> None:
    for name in ("__main__.py", "cli.py"):
        if not (REPO_ROOT / "bridge" / name).is_file():
            unavailable(f"bridge/{name} does not exist yet")


@pytest.fixture(scope="session")
def bridge(
    op: OP,
    bridge_port: int,
    widget_origin: str,
    logs_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
    site: Site,
    same_site: Site,
) -> Iterator[Bridge]:
    _bridge_available()
    public_url = f"http://127.0.0.1:{bridge_port}"
    tiledesk_secret = str(uuid.uuid4())
    settings = tmp_path_factory.mktemp("e2e-bridge") / "settings.toml"
    settings.write_text(
        _settings_toml(
            public_url,
            f"{widget_origin}/launch.js",
            op,
            tiledesk_secret,
            [site.url, same_site.url],
        )
    )
    log = logs_dir / "bridge.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_SETTINGS")}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bridge",
                "serve",
                "--settings",
                str(settings),
                "--host",
                "127.0.0.1",
                "--port",
                str(bridge_port),
            ],
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_ready(proc, public_url, log)
        yield Bridge(public_url, PROJECT_ID, tiledesk_secret, settings, log, op)
    finally:
        stop_process(proc)


def _wait_ready(proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    with httpx.Client(timeout=2.0) as client:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the bridge exited ({proc.returncode}):\n{tail(log)}", pytrace=False)
            try:
                # Live, then discovery and keys loaded, so the first login does not pay for them.
                if (
                    client.get(f"{url}/healthz").status_code == 200
                    and client.get(f"{url}/readyz").status_code == 200
                ):
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                stop_process(proc)
                pytest.fail(f"the bridge was not ready in time:\n{tail(log)}", pytrace=False)
            time.sleep(0.1)


# --- the browser -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).is_file():
        unavailable(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("the playwright Python package is not installed")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def new_context(browser: Any) -> Iterator[Callable[..., Any]]:
    """Fresh, isolated browser contexts (no shared cookies), closed after the test."""
    contexts: list[Any] = []

    def make(**options: Any) -> Any:
        context = browser.new_context(**options)
        context.set_default_timeout(10_000)
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        context.close()
