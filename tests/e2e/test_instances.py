"""Issues 10 and 9: two bridge instances behind nginx, one Redis, the OP's back-channel
logout, and a customer site whose sign-in ends on one instance and is redeemed on the other.

Real parts only: two uvicorn servers (``python -m bridge serve``) with ``store = "redis"``
sharing one redis-server, nginx balancing round-robin in front of them (the README's
configuration), the certified OP with back-channel logout on, registered at nginx, and
Chromium.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.servers import Nginx, RedisServer, free_port, stop_process

from .conftest import (
    PROJECT_ID,
    REALM,
    REPO_ROOT,
    Bridge,
    Site,
    _serve_site,
    _wait_ready,
    start_op,
)
from .test_browser import finish_op_logout, sign_in, widget_calls
from .test_embed import chat_state, popup_sign_in

pytestmark = pytest.mark.e2e


@dataclass
class Cluster:
    """What a visitor sees (``bridge.url`` is nginx) and what is behind it."""

    bridge: Bridge
    nginx: Nginx
    instances: list[str]
    site: Site


def _settings(
    public_url: str, redis_url: str, widget_url: str, op: Any, secret: str, site: str
) -> str:
    return f"""\
[server]
public_url = "{public_url}"
trusted_proxies = ["127.0.0.1/32"]

[session]
secret = "{secret}"
store = "redis"
redis_url = "{redis_url}"

[tiledesk]
project_id = "{PROJECT_ID}"
secret = "{secret[:36]}"
widget_url = "{widget_url}"

[providers.acme]
preset = "keycloak"
display_name = "Acme SSO"
base_url = "{op.origin}"
realm = "{REALM}"
client_id = "{op.client_id}"
client_secret = "{op.client_secret}"
scopes = ["openid", "email", "profile", "groups"]

[providers.acme.access]
email_domains = ["acme.test"]

[sites."{site}"]
"""


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, widget_origin: str, logs_dir: Path
) -> Iterator[Cluster]:
    workdir = tmp_path_factory.mktemp("cluster")
    redis = RedisServer(workdir)
    ports = [free_port(), free_port()]
    nginx = Nginx(workdir, [f"127.0.0.1:{port}" for port in ports])
    procs: list[subprocess.Popen[bytes]] = []
    try:
        with (
            start_op(nginx.url, logs_dir / "op-cluster.log", backchannel_logout=True) as op,
            _serve_site("localhost", nginx.url, widget_origin) as site,
        ):
            secret = str(uuid.uuid4()) + "-" + uuid.uuid4().hex
            settings = workdir / "settings.toml"
            widget_url = f"{widget_origin}/launch.js"
            settings.write_text(_settings(nginx.url, redis.url, widget_url, op, secret, site.url))
            for n, port in enumerate(ports):
                log = logs_dir / f"bridge-instance-{n}.log"
                with log.open("wb") as out:
                    procs.append(
                        subprocess.Popen(
                            [sys.executable, "-m", "bridge", "serve", "--settings",
                             str(settings), "--host", "127.0.0.1", "--port", str(port)],
                            cwd=REPO_ROOT,
                            stdout=out,
                            stderr=subprocess.STDOUT,
                        )
                    )  # fmt: skip
                _wait_ready(procs[-1], f"http://127.0.0.1:{port}", log)
            bridge = Bridge(nginx.url, PROJECT_ID, secret[:36], settings, logs_dir, op)
            instances = [f"http://127.0.0.1:{port}" for port in ports]
            yield Cluster(bridge, nginx, instances, site)
    finally:
        for proc in procs:
            stop_process(proc)
        nginx.stop()
        redis.stop()


def auth_at(instance: str, cluster: Cluster, cookies: list[dict[str, Any]]) -> int:
    """POST /auth straight at one instance, with the browser's cookies, as the page would."""
    jar = {c["name"]: c["value"] for c in cookies}
    response = httpx.post(
        f"{instance}/auth", cookies=jar, headers={"Origin": cluster.bridge.url}, timeout=5
    )
    return response.status_code


def test_two_instances_share_sign_in_sign_out_and_the_ops_back_channel_logout(
    cluster: Cluster, new_context: Any
) -> None:
    bridge = cluster.bridge
    context = new_context()
    page = context.new_page()

    # Sign in through nginx: round-robin sends the flow's requests to both instances.
    sign_in(page, bridge, "alice")
    upstreams = {upstream for _, upstream in cluster.nginx.served()}
    assert upstreams == {i.removeprefix("http://") for i in cluster.instances}
    signed_in_cookies = context.cookies()
    assert [auth_at(i, cluster, signed_in_cookies) for i in cluster.instances] == [200, 200]

    # Sign out at one instance: the session is gone from Redis, the copied cookie is dead.
    page.click("form[action='/logout'] button")
    finish_op_logout(page, bridge)
    assert [auth_at(i, cluster, signed_in_cookies) for i in cluster.instances] == [401, 401]

    # Sign in again, then end the session at the OP itself: its back-channel logout
    # reaches the bridge through nginx, and the visitor is signed out everywhere.
    sign_in(page, bridge, "alice")
    cookies = context.cookies()
    assert [auth_at(i, cluster, cookies) for i in cluster.instances] == [200, 200]
    op_page = context.new_page()
    op_page.goto(f"{bridge.op.issuer}/session/end")
    op_page.click("#op-logout")
    op_page.wait_for_selector("#op-logged-out")
    ended = time.monotonic()
    while [auth_at(i, cluster, cookies) for i in cluster.instances] != [401, 401]:
        assert time.monotonic() - ended < 1.0, "the back-channel logout did not arrive in 1 s"
        time.sleep(0.05)
    backchannel = [entry for entry in cluster.nginx.served() if "backchannel" in entry[0]]
    assert [request for request, _ in backchannel] == [
        "POST /backchannel-logout/acme",
        "POST /backchannel-logout/acme",
    ]

    # The page notices on its next load: signed out, and the widget signed out with it.
    page.reload()
    assert page.locator('a.signin[href="/login/acme"]').is_visible()
    page.wait_for_function("(window.__tiledeskCalls || []).length > 0")
    assert widget_calls(page, "logout") == [["logout"]]
    assert widget_calls(page, "signInWithCustomToken") == []


def test_a_sites_sign_in_that_ends_on_one_instance_is_redeemed_on_the_other(
    cluster: Cluster, new_context: Any
) -> None:
    """The popup's callback leaves a one-time handle in Redis at one instance; the site's
    redemption is sent to the other one on purpose (round-robin alone might not)."""
    bridge, site = cluster.bridge, cluster.site
    page = new_context().new_page()
    redeemed_at: list[str] = []

    def to_the_other_instance(route: Any) -> None:
        request = route.request
        if request.method != "POST" or b"handle" not in (request.post_data_buffer or b""):
            route.continue_()
            return
        *_, callback_upstream = [  # this sign-in's callback: the last one so far
            upstream
            for served, upstream in cluster.nginx.served()
            if served.startswith("GET /callback/acme")
        ]
        (other,) = [i for i in cluster.instances if i.removeprefix("http://") != callback_upstream]
        redeemed_at.append(other)
        route.continue_(url=f"{other}/auth")

    page.route(f"{bridge.url}/auth", to_the_other_instance)
    page.goto(f"{site.url}/index.html")
    chat_state(page, "signed-out")
    popup_sign_in(page, bridge, site, "alice")
    chat_state(page, "signed-in: Alice")
    assert len(redeemed_at) == 1
    (call,) = widget_calls(page, "signInWithCustomToken")
    assert call[1].startswith("JWT ")
