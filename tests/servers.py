"""Real servers for the tests: Debian's redis-server and nginx, on free loopback ports.

Nothing is faked: a test that needs Redis gets a real ``redis-server`` (no persistence),
and one that needs a load balancer gets a real ``nginx`` with a generated configuration.
Missing binaries skip those tests on a developer machine and fail them in CI
(``BRIDGE_REQUIRE_BROWSER=1``, set by ``.ci/run``, which installs both).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import redis

REDIS_SERVER = os.environ.get("BRIDGE_REDIS_SERVER", "/usr/bin/redis-server")
NGINX = os.environ.get("BRIDGE_NGINX", "/usr/sbin/nginx")
START_TIMEOUT = 10.0


def unavailable(reason: str) -> None:
    """Skip where the tool is missing, except in CI, where that is a failure."""
    if os.environ.get("BRIDGE_REQUIRE_BROWSER") == "1":
        pytest.fail(f"BRIDGE_REQUIRE_BROWSER=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_process(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def tail(path: Path, lines: int = 40) -> str:
    """The end of a server's log, for a failure message."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class RedisServer:
    """One ``redis-server`` on 127.0.0.1; a test may stop, pause or restart it.

    In memory only, unless ``persistent``: then every write goes to an append-only file in
    ``workdir`` before it is acknowledged, and a restart reads it back.
    """

    def __init__(
        self,
        workdir: Path,
        password: str | None = None,
        *,
        persistent: bool = False,
        replica_of: RedisServer | None = None,
    ) -> None:
        if not Path(REDIS_SERVER).is_file() or shutil.which(REDIS_SERVER) is None:
            unavailable(
                f"redis-server is not installed at {REDIS_SERVER} (apt-get install redis-server)"
            )
        self.workdir = workdir
        self.password = password
        self.persistent = persistent
        self.replica_of = replica_of
        self.port = free_port()
        self.log = workdir / "redis.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.paused = False
        self.start()

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, password=self.password, socket_timeout=2)

    def start(self) -> None:
        args = [
            REDIS_SERVER,
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--save", "",
            "--appendonly", "yes" if self.persistent else "no",
            "--appendfsync", "always",
            "--dir", str(self.workdir),
            "--logfile", str(self.log),
        ]  # fmt: skip
        if self.password:
            # masterauth too: after a failover any server may be a replica of another.
            args += ["--requirepass", self.password, "--masterauth", self.password]
        if self.replica_of is not None:
            args += ["--replicaof", "127.0.0.1", str(self.replica_of.port)]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                with self.client() as probe:
                    if probe.ping():
                        return
            except redis.RedisError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"redis-server did not start:\n{tail(self.log)}", pytrace=False)
            time.sleep(0.05)

    def stop(self) -> None:
        self.resume_if_paused()
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def pause(self) -> None:
        """Freeze the server: connections stay open but nothing answers (a hung Redis)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)
        self.paused = True

    def resume_if_paused(self) -> None:
        if self.proc is not None and self.paused:
            self.proc.send_signal(signal.SIGCONT)
            self.paused = False

    def flush(self) -> None:
        with self.client() as probe:
            probe.flushall()

    def stored_keys(self) -> list[str]:
        with self.client() as probe:
            return sorted(k.decode() for k in probe.keys("*"))


class RedisSentinel:
    """One Redis Sentinel (``redis-server --sentinel``) on 127.0.0.1 watching ``primary``."""

    def __init__(self, workdir: Path, primary: RedisServer, name: str = "mymaster") -> None:
        self.port = free_port()
        self.name = name
        self.log = workdir / "sentinel.log"
        config = workdir / "sentinel.conf"  # Sentinel rewrites it: a file of its own
        config.write_text(
            f"bind 127.0.0.1\nport {self.port}\ndir {workdir}\nlogfile {self.log}\n"
            f"sentinel monitor {name} 127.0.0.1 {primary.port} 1\n"
            f"sentinel down-after-milliseconds {name} 5000\n"
            + (f"sentinel auth-pass {name} {primary.password}\n" if primary.password else "")
        )
        self.proc = subprocess.Popen(
            [REDIS_SERVER, str(config), "--sentinel"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                with redis.Redis(port=self.port, socket_timeout=2) as probe:
                    if probe.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", name):
                        return
            except redis.RedisError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"redis sentinel did not start:\n{tail(self.log)}", pytrace=False)
            time.sleep(0.05)

    def url(self, primary: str | None = None, db: int = 0) -> str:
        return f"redis+sentinel://127.0.0.1:{self.port}/{primary or self.name}/{db}"

    def _ask(self, *command: str) -> object:
        with redis.Redis(port=self.port, socket_timeout=5) as sentinel:
            return sentinel.execute_command("SENTINEL", *command)

    def primary_port(self) -> int:
        address = self._ask("GET-MASTER-ADDR-BY-NAME", self.name)
        assert isinstance(address, list | tuple)
        return int(address[1])

    def fail_over(self, timeout: float = 60.0) -> None:
        """Promote a replica, as Sentinel does when the primary fails, and wait until it has.

        Sentinel learns of replicas from the primary every 10 s, so this may wait that long.
        """
        before = self.primary_port()
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._ask("FAILOVER", self.name)
                break
            except redis.ResponseError:  # NOGOODSLAVE: no replica known yet
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        while self.primary_port() == before:
            assert time.monotonic() < deadline, "Sentinel did not promote the replica"
            time.sleep(0.1)

    def stop(self) -> None:
        stop_process(self.proc)


def nginx_config(*, listen: int, upstreams: list[str], workdir: Path) -> str:
    """A load balancer in front of several bridge instances, as the README recommends."""
    servers = "\n".join(f"        server {upstream};" for upstream in upstreams)
    return f"""\
daemon off;
master_process off;
worker_processes 1;
pid {workdir}/nginx.pid;
error_log {workdir}/error.log warn;
events {{ worker_connections 256; }}
http {{
    # The path only ($uri, never the query: it carries codes and states) and which
    # instance answered.
    log_format upstream '$remote_addr "$request_method $uri" $status $upstream_addr';
    access_log {workdir}/access.log upstream;
    client_body_temp_path {workdir}/body;
    proxy_temp_path {workdir}/proxy;
    fastcgi_temp_path {workdir}/fastcgi;
    uwsgi_temp_path {workdir}/uwsgi;
    scgi_temp_path {workdir}/scgi;

    upstream bridge {{
        # Round-robin: every instance serves any request, sessions live in Redis.
{servers}
        keepalive 16;
    }}
    server {{
        listen 127.0.0.1:{listen};
        location / {{
            proxy_pass http://bridge;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Request-ID $request_id;
        }}
    }}
}}
"""


class Nginx:
    """A real nginx on a free loopback port, balancing round-robin over ``upstreams``."""

    def __init__(self, workdir: Path, upstreams: list[str]) -> None:
        if not Path(NGINX).is_file():
            unavailable(f"nginx is not installed at {NGINX} (apt-get install nginx)")
        self.workdir = workdir
        self.port = free_port()
        self.conf = workdir / "nginx.conf"
        self.conf.write_text(nginx_config(listen=self.port, upstreams=upstreams, workdir=workdir))
        log = workdir / "error.log"
        self.proc = subprocess.Popen(
            [NGINX, "-c", str(self.conf), "-p", str(workdir), "-e", str(log)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                stop_process(self.proc)
                pytest.fail(f"nginx did not start:\n{tail(log)}", pytrace=False)
            time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def served(self) -> list[tuple[str, str]]:
        """``(request, upstream)`` for each request so far, e.g. ``("GET /", "127.0.0.1:8001")``."""
        log = self.workdir / "access.log"
        lines = log.read_text().splitlines() if log.exists() else []
        entries = []
        for line in lines:
            _, request, rest = line.split('"', 2)
            entries.append((request, rest.split()[-1]))
        return entries

    def stop(self) -> None:
        stop_process(self.proc)
