"""`make bench`: the bridge against real servers on loopback, side by side, with budgets.

Starts real processes on 127.0.0.1 — the bridge served the way the README says
(`tiledesk-bridge serve`: uvicorn with uvloop and httptools), a bare Starlette
endpoint on the same server options (the framework's ceiling), an Express +
jsonwebtoken backend (the shape of Tiledesk's tutorial backend), and a fast
loopback OpenID Provider (`bench/idp.py`) — and measures them interleaved,
round by round, so that a busy machine slows every contender alike and the
ratios stay meaningful. Load comes from other processes: `wrk` for `/auth`,
this script's own HTTP client for sign-ins. Signed-in sessions come only from
real sign-ins over HTTP, never from a forged cookie.

Prints a table (figure | budget | pass/fail) and writes bench/results.json.
Asserts nothing and never fails on a budget: the figures are for reading.

    python bench/bench.py [--quick] [--rounds N] [--duration S] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import os
import platform
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
BIN = Path(sys.executable).parent
EXPRESS = BENCH / "express"
LUA = BENCH / "auth.lua"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PROJECT_ID = "64f0c0ffee00000000000001"
CLIENT_ID = "bench-client"
PROVIDER = "bench"


@dataclass(frozen=True)
class Plan:
    rounds: int
    duration: float  # seconds of wrk per contender per round
    connections: int
    signins_per_round: int
    signin_concurrency: int
    sequential_signins: int
    slow_callbacks: int
    slow_delay: float
    memory_signins: int
    memory_auth_calls: int


FULL = Plan(
    rounds=5,
    duration=5.0,
    connections=32,
    signins_per_round=300,
    signin_concurrency=8,
    sequential_signins=100,
    slow_callbacks=200,
    slow_delay=0.3,
    memory_signins=10_000,
    memory_auth_calls=100_000,
)
QUICK = Plan(
    rounds=2,
    duration=2.0,
    connections=32,
    signins_per_round=100,
    signin_concurrency=8,
    sequential_signins=100,
    slow_callbacks=200,
    slow_delay=0.3,
    memory_signins=500,
    memory_auth_calls=10_000,
)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- processes ---------------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _proc_children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    return children


def _cpu_ticks(pid: int) -> int:
    """utime + stime of one process (all its threads), in clock ticks."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Server:
    """A process of ours on loopback, its own process group, stopped by its id."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        port: int,
        logs: Path,
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = logs / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.started = time.monotonic()
        self.proc = subprocess.Popen(  # noqa: S603 - our own argv
            argv,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )

    def pids(self) -> list[int]:
        """The process and every descendant (uvicorn's workers)."""
        tree = _proc_children()
        found, todo = [], [self.proc.pid]
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo.extend(tree.get(pid, []))
        return found

    def cpu_seconds(self) -> float:
        total = 0
        for pid in self.pids():
            with contextlib.suppress(OSError):
                total += _cpu_ticks(pid)
        return total / CLK_TCK

    def rss_mib(self) -> float:
        total = 0
        for pid in self.pids():
            with contextlib.suppress(OSError):
                total += _rss_kib(pid)
        return total / 1024

    def wait_ready(self, path: str, timeout: float = 30.0) -> float:
        """Seconds from process start to the first 200 on ``path``; polls every 5 ms."""
        deadline = self.started + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}): {self.tail()}")
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
            try:
                conn.request("GET", path)
                if conn.getresponse().status == 200:
                    return time.monotonic() - self.started
            except OSError:
                pass
            finally:
                conn.close()
            time.sleep(0.005)
        raise RuntimeError(f"{self.name} not ready on {path} after {timeout}s: {self.tail()}")

    def tail(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-2000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self._log.close()


class Fleet:
    """Every server this run started, stopped at the end whatever happens."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.servers: list[Server] = []
        self.client_secret = secrets.token_urlsafe(24)
        self.tiledesk_secret = str(uuid.uuid4())
        (workdir / "session_secret").write_text(secrets.token_urlsafe(48))
        (workdir / "tiledesk_secret").write_text(self.tiledesk_secret)
        (workdir / "client_secret").write_text(self.client_secret)

    def start(self, name: str, argv: list[str], port: int, **kw: Any) -> Server:
        server = Server(name, argv, port, self.workdir, **kw)
        self.servers.append(server)
        return server

    def stop(self, server: Server) -> None:
        server.stop()
        self.servers.remove(server)

    def stop_all(self) -> None:
        for server in reversed(self.servers):
            server.stop()
        self.servers.clear()

    def idp(self, name: str, delay: float = 0.0) -> Server:
        port = free_port()
        argv = [sys.executable, str(BENCH / "idp.py"), "--port", str(port)]
        argv += [f"--client-id={CLIENT_ID}", f"--client-secret={self.client_secret}"]
        argv += ["--delay", str(delay)]
        server = self.start(name, argv, port)
        server.wait_ready("/.well-known/openid-configuration", timeout=60)
        return server

    def bridge(
        self,
        name: str,
        idp: Server,
        workers: int = 1,
        source: Path | None = None,
        userinfo: bool | None = None,
    ) -> tuple[Server, float]:
        """`tiledesk-bridge serve` on a generated settings file; returns it and its ready time.

        ``userinfo``: the provider's ``userinfo`` setting, when not the default ("auto").
        """
        always = "" if userinfo is None else f"userinfo = {str(userinfo).lower()}\n"
        port = free_port()
        settings = self.workdir / f"{name}.toml"
        settings.write_text(
            f"""
[server]
public_url = "http://127.0.0.1:{port}"
host = "127.0.0.1"
port = {port}

[session]
secret = "file:session_secret"

[tiledesk]
project_id = "{PROJECT_ID}"
secret = "file:tiledesk_secret"

[providers.{PROVIDER}]
preset = "generic"
issuer = "{idp.url}"
client_id = "{CLIENT_ID}"
client_secret = "file:client_secret"
{always}
[providers.{PROVIDER}.claims]
attributes = {{ groups = "groups" }}

[providers.{PROVIDER}.access]
email_domains = ["acme.test"]
"""
        )
        argv = [str(BIN / "tiledesk-bridge"), "serve", "--settings", str(settings)]
        argv += ["--workers", str(workers)]
        # ``source``: another version of the package, found before the installed one.
        env = {"PYTHONPATH": str(source)} if source else None
        server = self.start(name, argv, port, env=env)
        return server, server.wait_ready("/readyz")

    def express(self, user: dict[str, Any]) -> Server:
        port = free_port()
        env = {
            "BENCH_PORT": str(port),
            "BENCH_SECRET": self.tiledesk_secret,
            "BENCH_PROJECT_ID": PROJECT_ID,
            "BENCH_USER": json.dumps(user),
        }
        node = shutil.which("node") or "node"
        server = self.start("express", [node, str(EXPRESS / "server.js")], port, env=env)
        _wait_port(server)
        return server

    def floor(self) -> Server:
        """bench/floor.py: the library work of a signed-in /auth, nothing else."""
        port = free_port()
        argv = [sys.executable, str(BENCH / "floor.py"), "--port", str(port)]
        # The session cookie's name is the settings' default there as in the bench's bridges.
        argv += ["--secrets", str(self.workdir), "--project-id", PROJECT_ID]
        server = self.start("floor", argv, port)
        _wait_port(server, status=401)  # a request without the visitor's cookie
        return server

    def bare(self) -> Server:
        port = free_port()
        server = self.start(
            "bare", [sys.executable, str(BENCH / "bare.py"), "--port", str(port)], port
        )
        _wait_port(server)
        return server


def _wait_port(server: Server, timeout: float = 30.0, status: int = 200) -> None:
    """Ready once POST /auth answers ``status`` (these have no /readyz)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=2)
        try:
            conn.request("POST", "/auth")
            if conn.getresponse().status == status:
                return
        except OSError:
            pass
        finally:
            conn.close()
        if server.proc.poll() is not None:
            break
        time.sleep(0.02)
    raise RuntimeError(f"{server.name} did not answer: {server.tail()}")


# --- sign-ins over HTTP ------------------------------------------------------------


class Visitor:
    """One browser: its own cookie jar over the shared connection pool."""

    def __init__(self, transport: httpx.AsyncBaseTransport) -> None:
        self.http = httpx.AsyncClient(
            transport=transport, follow_redirects=False, trust_env=False, timeout=60
        )

    def cookie_header(self, path: str = "/auth") -> str:
        """The Cookie header a browser sends with a request to ``path`` (RFC 6265 5.1.4:
        the logout cookie, ``Path=/logout``, does not ride along on ``POST /auth``)."""
        return "; ".join(
            f"{c.name}={c.value}"
            for c in self.http.cookies.jar
            if path == c.path or path.startswith(c.path.rstrip("/") + "/")
        )

    async def start(self, bridge: Server) -> str:
        """GET /login/{p}, then the IdP's authorize: returns the callback URL it sends back."""
        start = await self.http.get(f"{bridge.url}/login/{PROVIDER}")
        _expect(start, 302, "login")
        authorize = await self.http.get(start.headers["location"])
        _expect(authorize, 302, "IdP authorize")
        return str(authorize.headers["location"])

    async def finish(self, callback: str) -> httpx.Response:
        return await self.http.get(callback)

    async def sign_in(self, bridge: Server) -> float:
        """A complete sign-in, page included; returns its wall time."""
        started = time.perf_counter()
        done = await self.finish(await self.start(bridge))
        _expect(done, 303, "callback")
        page = await self.http.get(done.headers["location"])
        _expect(page, 200, "page after sign-in")
        return time.perf_counter() - started

    async def auth(self, bridge: Server) -> dict[str, Any]:
        answer = await self.http.post(f"{bridge.url}/auth", headers=auth_headers(bridge))
        _expect(answer, 200, "/auth")
        body: dict[str, Any] = answer.json()
        return body


def auth_headers(bridge: Server) -> dict[str, str]:
    return {"Accept": "application/json", "Origin": bridge.url, "Sec-Fetch-Site": "same-origin"}


def _expect(response: httpx.Response, status: int, what: str) -> None:
    if response.status_code != status:
        code = re.search(r'id="error-code">([a-z_]+)<|"error": ?"([a-z_]+)"', response.text)
        raise RuntimeError(
            f"{what}: HTTP {response.status_code}, expected {status}"
            + (f" ({code.group(1) or code.group(2)})" if code else "")
        )


def pool(limit: int | None = None) -> httpx.AsyncHTTPTransport:
    limits = httpx.Limits(max_connections=limit, max_keepalive_connections=limit or 512)
    return httpx.AsyncHTTPTransport(limits=limits, retries=0)


async def signed_in(bridge: Server, transport: httpx.AsyncBaseTransport) -> Visitor:
    visitor = Visitor(transport)
    await visitor.sign_in(bridge)
    await visitor.auth(bridge)
    return visitor


async def sign_ins(
    bridge: Server, transport: httpx.AsyncBaseTransport, count: int, concurrency: int
) -> list[float]:
    """``count`` complete sign-ins, each a new visitor, ``concurrency`` at a time."""
    times: list[float] = []
    todo = iter(range(count))

    async def worker() -> None:
        for _ in todo:
            times.append(await Visitor(transport).sign_in(bridge))

    async with asyncio.timeout(max(120.0, count * 0.5)):
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return times


def idp_stats(idp: Server, reset: bool = False) -> dict[str, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", idp.port, timeout=10)
    try:
        conn.request("POST" if reset else "GET", "/stats/reset" if reset else "/stats")
        stats: dict[str, Any] = json.loads(conn.getresponse().read())
        return stats
    finally:
        conn.close()


# --- wrk ---------------------------------------------------------------------------

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0:
        sys.exit("wrk is missing: apt-get install wrk (Debian's package)")
    log("installing wrk from Debian's packages")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)  # noqa: S607
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, env=env)  # noqa: S607
    return shutil.which("wrk") or sys.exit("wrk did not install")


@dataclass
class WrkRun:
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    bad: int  # non-2xx answers and socket errors
    cpu_ms_per_request: float | None = None


def run_wrk(
    server: Server,
    *,
    duration: float,
    connections: int,
    cookie: str = "",
    origin: str = "",
    cpu_of: Server | None = None,
) -> WrkRun:
    argv = [ensure_wrk(), "-t1", f"-c{connections}", f"-d{duration:g}s", "--latency"]
    argv += ["--timeout", "10s", "-s", str(LUA), f"{server.url}/auth"]
    env = {**os.environ, "BENCH_COOKIE": cookie, "BENCH_ORIGIN": origin or server.url}
    cpu_before = cpu_of.cpu_seconds() if cpu_of else 0.0
    out = subprocess.run(  # noqa: S603 - our own argv
        argv, env=env, capture_output=True, text=True, timeout=duration + 60, check=True
    ).stdout
    cpu = (cpu_of.cpu_seconds() - cpu_before) if cpu_of else None
    try:
        total = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)\b", out)
        assert total is not None
        requests = int(total.group(1))
        seconds = float(total.group(2)) * UNITS[total.group(3)] / 1e3
        latency = {
            q: float(v) * UNITS[u]
            for q, v, u in re.findall(r"^\s+(\d+)%\s+([\d.]+)(us|ms|s|m)", out, re.M)
        }
        bad = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
        errors = re.search(r"connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
        if errors:
            bad += sum(int(n) for n in errors.groups())
        return WrkRun(
            requests=requests,
            seconds=seconds,
            rps=requests / seconds,
            p50_ms=latency["50"],
            p99_ms=latency["99"],
            bad=bad,
            cpu_ms_per_request=cpu * 1000 / requests if cpu is not None and requests else None,
        )
    except (AssertionError, KeyError) as exc:
        raise RuntimeError(f"cannot read wrk's output:\n{out}") from exc


# --- the measurements --------------------------------------------------------------


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Target:
    name: str
    server: Server
    cookie: str = ""
    origin: str = ""
    cpu_of: Server | None = None


async def auth_rounds(
    plan: Plan, targets: list[Target], on_round: Callable[[int], Any]
) -> dict[str, list[WrkRun]]:
    """Every contender once per round, the order rotated each round; a warm-up first."""
    for t in targets:
        run_wrk(t.server, duration=1, connections=plan.connections, cookie=t.cookie)
    runs: dict[str, list[WrkRun]] = {t.name: [] for t in targets}
    for r in range(plan.rounds):
        order = targets[r % len(targets) :] + targets[: r % len(targets)]
        for t in order:
            run = run_wrk(
                t.server,
                duration=plan.duration,
                connections=plan.connections,
                cookie=t.cookie,
                origin=t.origin,
                cpu_of=t.cpu_of,
            )
            runs[t.name].append(run)
        await on_round(r)
        line = "  ".join(
            f"{name} {rs[-1].rps:,.0f}/s p99 {rs[-1].p99_ms:.1f}ms" for name, rs in runs.items()
        )
        log(f"round {r + 1}/{plan.rounds}: {line}")
    return runs


async def main_async(plan: Plan, args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="bridge-bench-"))
    fleet = Fleet(workdir)
    transport = pool()
    results: dict[str, Any] = {}
    try:
        log(f"working in {workdir}")
        idp = fleet.idp("idp")
        bridge1, ready1 = fleet.bridge("bridge", idp)
        bridge2, ready2 = fleet.bridge("bridge-2w", idp, workers=2)
        # The same bridge told to call userinfo on every sign-in, as the sign-in
        # counts it; the default ("auto") skips it when the ID token holds every claim read.
        bridge_ui, _ = fleet.bridge("bridge-userinfo", idp, userinfo=True)
        visitor1 = await signed_in(bridge1, transport)
        visitor2 = await signed_in(bridge2, transport)
        user = (await visitor1.auth(bridge1))["user"]
        bare = fleet.bare()
        express = fleet.express(user)
        readies = [ready1]
        log(f"servers up (bridge ready in {ready1:.2f}s, 2 workers {ready2:.2f}s); rounds start")

        signin_rounds: list[dict[str, float]] = []

        async def each_round(r: int) -> None:
            # Sign-ins against the fast IdP: throughput and the bridge's own CPU.
            cpu = bridge1.cpu_seconds()
            idp_cpu = idp.cpu_seconds()
            calls_before = idp_stats(idp)["calls"]
            started = time.perf_counter()
            times = await sign_ins(
                bridge1, transport, plan.signins_per_round, plan.signin_concurrency
            )
            wall = time.perf_counter() - started
            # Read before the next batch: the IdP serves both bridges.
            bridge_cpu_ms = (bridge1.cpu_seconds() - cpu) * 1000 / len(times)
            idp_cpu_ms = (idp.cpu_seconds() - idp_cpu) * 1000 / len(times)
            calls = idp_stats(idp)["calls"]
            userinfo_calls = calls.get("/userinfo", 0) - calls_before.get("/userinfo", 0)
            # Then the same sign-ins on the bridge that calls userinfo every time.
            cpu_ui = bridge_ui.cpu_seconds()
            ui_times = await sign_ins(
                bridge_ui, transport, plan.signins_per_round, plan.signin_concurrency
            )
            signin_rounds.append(
                {
                    "per_second": len(times) / wall,
                    "bridge_cpu_ms": bridge_cpu_ms,
                    "idp_cpu_ms": idp_cpu_ms,
                    "p50_ms": quantile(times, 0.5) * 1000,
                    "p99_ms": quantile(times, 0.99) * 1000,
                    "userinfo_calls_per_signin": userinfo_calls / len(times),
                    "bridge_cpu_ms_userinfo": (bridge_ui.cpu_seconds() - cpu_ui)
                    * 1000
                    / len(ui_times),
                }
            )
            # A cold start: process start to /readyz 200, with the others idle.
            cold, ready = fleet.bridge("bridge-cold", idp)
            fleet.stop(cold)
            readies.append(ready)
            s = signin_rounds[-1]
            log(
                f"round {r + 1}: {s['per_second']:.0f} sign-ins/s, bridge CPU "
                f"{s['bridge_cpu_ms']:.2f} ms/sign-in, cold start {ready:.2f}s"
            )

        targets = [
            Target("bare", bare),
            Target("bridge", bridge1, visitor1.cookie_header(), cpu_of=bridge1),
            Target("express", express),
            Target("bridge_2_workers", bridge2, visitor2.cookie_header(), cpu_of=bridge2),
        ]
        runs = await auth_rounds(plan, targets, each_round)
        fleet.stop(bare)
        fleet.stop(express)
        fleet.stop(bridge2)
        fleet.stop(bridge_ui)

        # New connections to the IdP over sequential sign-ins (keep-alive at work).
        idp_stats(idp, reset=True)
        for _ in range(plan.sequential_signins):
            await Visitor(transport).sign_in(bridge1)
        sequential = idp_stats(idp)
        per_100 = sequential["connections"] * 100 / plan.sequential_signins
        log(
            f"{sequential['connections']} new IdP connections over "
            f"{plan.sequential_signins} sequential sign-ins"
        )
        fleet.stop(bridge1)

        slow = await slow_idp(plan, fleet, transport)

        memory = await memory_run(plan, fleet, idp, transport, readies)

        results = summarise(
            plan, runs, signin_rounds, per_100, sequential, slow, memory, readies, ready2
        )
        return results
    finally:
        await transport.aclose()
        fleet.stop_all()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


async def auth_only(plan: Plan, args: argparse.Namespace) -> None:
    """Bare vs bridge /auth only, for a change's before and after.

    With ``--baseline REF`` the bridge at that commit runs beside the working tree's,
    interleaved in the same rounds: the fair comparison on a machine whose load moves.
    With ``--floor``, bench/floor.py runs beside them: the same library work (opening the
    cookie, signing the token) with none of the bridge's checks, layers or headers.
    With ``--profile PATH``, a py-spy profile of the working tree's bridge under load.
    """
    workdir = Path(tempfile.mkdtemp(prefix="bridge-bench-"))
    fleet = Fleet(workdir)
    transport = pool()
    try:
        idp = fleet.idp("idp")
        bridge, _ = fleet.bridge("bridge", idp)
        visitor = await signed_in(bridge, transport)
        bare = fleet.bare()
        targets = [
            Target("bare", bare, cpu_of=bare),
            Target("bridge", bridge, visitor.cookie_header(), cpu_of=bridge),
        ]
        if args.floor:
            floor = fleet.floor()
            targets.append(Target("floor", floor, visitor.cookie_header(), cpu_of=floor))
        if args.baseline:
            source = workdir / "baseline"
            source.mkdir()
            archive = subprocess.run(  # noqa: S603
                # The package and the assets it finds beside it in a checkout.
                ["git", "archive", args.baseline, "bridge", "templates", "locales"],  # noqa: S607
                cwd=ROOT,
                capture_output=True,
                check=True,
            ).stdout
            subprocess.run(["tar", "-x", "-C", str(source)], input=archive, check=True)  # noqa: S603, S607
            base, _ = fleet.bridge("baseline", idp, source=source)
            base_visitor = await signed_in(base, transport)
            targets.append(Target("baseline", base, base_visitor.cookie_header(), cpu_of=base))

        async def nothing(r: int) -> None:
            return None

        runs = await auth_rounds(plan, targets, nothing)

        def describe(name: str) -> str:
            ratios = [x.rps / y.rps for x, y in zip(runs[name], runs["bare"], strict=True)]
            cpu = [r.cpu_ms_per_request or 0.0 for r in runs[name]]
            return (
                f"{name}: {median([r.rps for r in runs[name]]):,.0f} req/s, "
                f"/bare {median(ratios):.3f} ({', '.join(f'{r:.3f}' for r in ratios)}), "
                f"CPU per /auth {median(cpu) * 1000:.0f} us "
                f"({', '.join(f'{c * 1000:.0f}' for c in cpu)})"
            )

        bare_cpu = median([r.cpu_ms_per_request or 0.0 for r in runs["bare"]])
        print(
            f"bare: {median([r.rps for r in runs['bare']]):,.0f} req/s, "
            f"CPU per /auth {bare_cpu * 1000:.0f} us"
        )
        print(describe("bridge"))
        if args.floor:
            print(describe("floor"))
        if args.baseline:
            print(describe("baseline"))
            speed = [x.rps / y.rps for x, y in zip(runs["bridge"], runs["baseline"], strict=True)]
            cpu = [
                (x.cpu_ms_per_request or 0.0) / (y.cpu_ms_per_request or 1.0)
                for x, y in zip(runs["bridge"], runs["baseline"], strict=True)
            ]
            print(
                f"bridge vs {args.baseline}: req/s x{median(speed):.3f} "
                f"({', '.join(f'{s:.3f}' for s in speed)}), CPU per /auth x{median(cpu):.3f} "
                f"({', '.join(f'{c:.3f}' for c in cpu)})"
            )
        if args.profile:
            spy = shutil.which("py-spy") or str(BIN / "py-spy")
            argv = [spy, "record", "--pid", str(bridge.proc.pid), "--rate", "250"]
            argv += ["--duration", f"{plan.duration:.0f}", "--format", "raw"]
            argv += ["--output", str(args.profile), "--nonblocking"]
            profiler = subprocess.Popen(argv, stdout=subprocess.DEVNULL)  # noqa: S603
            run_wrk(
                bridge,
                duration=plan.duration,
                connections=plan.connections,
                cookie=visitor.cookie_header(),
            )
            profiler.wait(timeout=60)
            log(f"profile (py-spy raw, collapsed stacks) in {args.profile}")
    finally:
        await transport.aclose()
        fleet.stop_all()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


async def slow_idp(plan: Plan, fleet: Fleet, transport: httpx.AsyncBaseTransport) -> dict[str, Any]:
    """N callbacks at once against an IdP that answers every call after ``slow_delay``."""
    idp = fleet.idp("idp-slow", delay=plan.slow_delay)
    bridge, ready = fleet.bridge("bridge-slow", idp)
    wide = pool(limit=None)
    try:
        visitors = [Visitor(wide) for _ in range(plan.slow_callbacks)]
        callbacks = await asyncio.gather(*(v.start(bridge) for v in visitors))
        idp_stats(idp, reset=True)
        cpu = bridge.cpu_seconds()

        async def one(visitor: Visitor, callback: str) -> tuple[float, str]:
            started = time.perf_counter()
            try:
                answer = await visitor.finish(callback)
            except httpx.HTTPError as exc:
                return time.perf_counter() - started, type(exc).__name__
            took = time.perf_counter() - started
            if answer.status_code == 303:
                return took, "ok"
            code = re.search(r'id="error-code">([a-z_]+)<', answer.text)
            return took, f"HTTP {answer.status_code} {code.group(1) if code else ''}".strip()

        async with asyncio.timeout(120):
            outcomes = await asyncio.gather(
                *(one(v, c) for v, c in zip(visitors, callbacks, strict=True))
            )
        cpu_ms = (bridge.cpu_seconds() - cpu) * 1000
        stats = idp_stats(idp)
    finally:
        await wide.aclose()
        fleet.stop(bridge)
        fleet.stop(idp)
    times = [t * 1000 for t, _ in outcomes]
    failures: dict[str, int] = {}
    for _, outcome in outcomes:
        if outcome != "ok":
            failures[outcome] = failures.get(outcome, 0) + 1
    idp_calls = sum(stats["calls"].values()) / plan.slow_callbacks
    idp_ms = idp_calls * plan.slow_delay * 1000
    result = {
        "callbacks": plan.slow_callbacks,
        "succeeded": plan.slow_callbacks - sum(failures.values()),
        "failures": failures,
        "delay_ms": plan.slow_delay * 1000,
        "idp_calls_per_callback": idp_calls,
        "idp_ms_per_callback": idp_ms,
        "p50_ms": quantile(times, 0.5),
        "p99_ms": quantile(times, 0.99),
        "max_ms": max(times),
        "added_p99_ms": quantile(times, 0.99) - idp_ms,
        "bridge_cpu_ms_per_callback": cpu_ms / plan.slow_callbacks,
        "new_idp_connections": stats["connections"],
        # When the bridge's calls reached the IdP, from the burst's start: a late first
        # token call means the wait was before it, in the bridge or this client.
        "idp_arrivals_s": stats.get("arrivals", {}),
        "ready_s": ready,
    }
    log(
        f"slow IdP: {result['succeeded']}/{plan.slow_callbacks} ok, p99 {result['p99_ms']:.0f} ms "
        f"over {idp_ms:.0f} ms of IdP time, {stats['connections']} IdP connections"
    )
    return result


async def memory_run(
    plan: Plan,
    fleet: Fleet,
    idp: Server,
    transport: httpx.AsyncBaseTransport,
    readies: list[float],
) -> dict[str, Any]:
    """Resident memory of a fresh bridge: at ready, after sign-ins, after /auth calls."""
    bridge, ready = fleet.bridge("bridge-memory", idp)
    readies.append(ready)
    readings = {"at ready": bridge.rss_mib()}
    curve: list[dict[str, float]] = []
    chunk = max(1, plan.memory_signins // 10)
    done = 0
    while done < plan.memory_signins:
        n = min(chunk, plan.memory_signins - done)
        await sign_ins(bridge, transport, n, plan.signin_concurrency)
        done += n
        curve.append({"signins": done, "auth_calls": 0, "rss_mib": bridge.rss_mib()})
    readings[f"after {plan.memory_signins:,} sign-ins"] = bridge.rss_mib()
    log(f"memory: {readings}")
    visitor = await signed_in(bridge, transport)
    # wrk has no request count: 5-second runs until the count is reached, 10 minutes at most.
    calls = bad = 0
    deadline = time.monotonic() + 600
    while calls < plan.memory_auth_calls and time.monotonic() < deadline:
        run = run_wrk(
            bridge, duration=5, connections=plan.connections, cookie=visitor.cookie_header()
        )
        calls, bad = calls + run.requests, bad + run.bad
        curve.append({"signins": done, "auth_calls": calls, "rss_mib": bridge.rss_mib()})
    readings[f"after {plan.memory_auth_calls:,} /auth calls"] = bridge.rss_mib()
    fleet.stop(bridge)
    log(f"memory: {readings} ({calls} /auth calls, {bad} bad)")
    return {
        "readings_mib": readings,
        "curve_mib": curve,
        "auth_calls": calls,
        "auth_bad": bad,
    }


# --- the report --------------------------------------------------------------------


def summarise(
    plan: Plan,
    runs: dict[str, list[WrkRun]],
    signin_rounds: list[dict[str, float]],
    per_100: float,
    sequential: dict[str, Any],
    slow: dict[str, Any],
    memory: dict[str, Any],
    readies: list[float],
    ready_2_workers: float,
) -> dict[str, Any]:
    def med(name: str, key: str) -> float:
        return median([getattr(r, key) for r in runs[name]])

    def ratio(a: str, b: str) -> float:
        return median([x.rps / y.rps for x, y in zip(runs[a], runs[b], strict=True)])

    rss = list(memory["readings_mib"].values())
    figures = {
        "auth_rps": {name: med(name, "rps") for name in runs},
        "auth_p50_ms": {name: med(name, "p50_ms") for name in runs},
        "auth_p99_ms": {name: med(name, "p99_ms") for name in runs},
        "auth_bad_answers": {name: sum(r.bad for r in runs[name]) for name in runs},
        "bridge_cpu_ms_per_auth": median(
            [r.cpu_ms_per_request for r in runs["bridge"] if r.cpu_ms_per_request is not None]
        ),
        "ratio_bridge_to_bare": ratio("bridge", "bare"),
        "ratio_bridge_to_express": ratio("bridge", "express"),
        "ratio_2_workers_to_1": ratio("bridge_2_workers", "bridge"),
        "signins_per_second": median([s["per_second"] for s in signin_rounds]),
        "bridge_cpu_ms_per_signin": median([s["bridge_cpu_ms"] for s in signin_rounds]),
        "userinfo_calls_per_signin": median(
            [s["userinfo_calls_per_signin"] for s in signin_rounds]
        ),
        "bridge_cpu_ms_per_signin_userinfo": median(
            [s["bridge_cpu_ms_userinfo"] for s in signin_rounds]
        ),
        "idp_cpu_ms_per_signin": median([s["idp_cpu_ms"] for s in signin_rounds]),
        "signin_p99_ms": median([s["p99_ms"] for s in signin_rounds]),
        "new_idp_connections_per_100_signins": per_100,
        "ready_s": median(readies),
        "ready_s_max": max(readies),
        "ready_2_workers_s": ready_2_workers,
        "memory_mib": memory["readings_mib"],
        "memory_spread": (max(rss) - min(rss)) / min(rss),
        "slow_idp": slow,
    }
    slow_cpu_explains = plan.slow_callbacks * figures["bridge_cpu_ms_per_signin"]
    figures["slow_idp"]["cpu_explains_ms"] = slow_cpu_explains
    budgets = [
        ("auth_vs_bare", figures["ratio_bridge_to_bare"] >= 0.5, "≥ 0.5 (stretch 0.6)"),
        ("auth_vs_express", figures["ratio_bridge_to_express"] >= 5, "≥ 5"),
        ("auth_p99", figures["auth_p99_ms"]["bridge"] < 5, "< 5 ms"),
        ("cpu_per_signin", figures["bridge_cpu_ms_per_signin"] <= 3, "≤ 3 ms"),
        ("idp_connections", per_100 <= 2, "≤ 2 per 100"),
        (
            "slow_idp",
            slow["succeeded"] == slow["callbacks"],
            f"{slow['callbacks']}/{slow['callbacks']}",
        ),
        ("memory", figures["memory_spread"] <= 0.05, "within 5 %"),
        ("ready", figures["ready_s"] < 1.5, "< 1.5 s"),
    ]
    return {
        "figures": figures,
        "budgets": {name: {"pass": ok, "budget": text} for name, ok, text in budgets},
        "rounds": {name: [asdict(r) for r in rs] for name, rs in runs.items()},
        "signin_rounds": signin_rounds,
        "readies_s": readies,
        "sequential_signins": sequential,
        "memory": memory,
    }


def table(plan: Plan, results: dict[str, Any], machine: dict[str, Any]) -> str:
    f, budgets, slow = results["figures"], results["budgets"], results["figures"]["slow_idp"]
    rps, p99 = f["auth_rps"], f["auth_p99_ms"]
    rows: list[tuple[str, str, str, str]] = []

    def row(label: str, value: str, budget: str | None = None, watch: bool = False) -> None:
        if budget is None:
            rows.append((label, value, "watch" if watch else "", ""))
        else:
            verdict = "pass" if budgets[budget]["pass"] else "FAIL"
            rows.append((label, value, budgets[budget]["budget"], verdict))

    def auth(name: str) -> str:
        return f"{rps[name]:,.0f} req/s, p99 {p99[name]:.1f} ms"

    row("POST /auth, bare Starlette (the ceiling)", auth("bare"))
    row("POST /auth, Express + jsonwebtoken", auth("express"))
    row("POST /auth, bridge, 1 worker", auth("bridge"))
    row("POST /auth, bridge, 2 workers", auth("bridge_2_workers"))
    row("  bridge / bare", f"{f['ratio_bridge_to_bare']:.2f}", "auth_vs_bare")
    row("  bridge / Express", f"{f['ratio_bridge_to_express']:.2f}", "auth_vs_express")
    row(f"  bridge p99 at {plan.connections} connections", f"{p99['bridge']:.2f} ms", "auth_p99")
    row("  2 workers / 1 worker", f"{f['ratio_2_workers_to_1']:.2f}")
    row("  bridge CPU per /auth", f"{f['bridge_cpu_ms_per_auth']:.3f} ms")
    row(
        f"sign-ins per second, {plan.signin_concurrency} at a time",
        f"{f['signins_per_second']:.0f} /s",
    )
    row(
        f"  bridge CPU per sign-in (userinfo calls: {f['userinfo_calls_per_signin']:.0f} each)",
        f"{f['bridge_cpu_ms_per_signin']:.2f} ms",
        "cpu_per_signin",
    )
    row(
        "  the same with userinfo = true (1 call each)",
        f"{f['bridge_cpu_ms_per_signin_userinfo']:.2f} ms",
        watch=True,
    )
    row("  (the IdP's CPU per sign-in)", f"{f['idp_cpu_ms_per_signin']:.2f} ms")
    row(
        f"  new IdP connections per 100 sign-ins ({plan.sequential_signins} in a row)",
        f"{f['new_idp_connections_per_100_signins']:.0f}",
        "idp_connections",
    )
    row(
        f"slow IdP, {slow['delay_ms']:.0f} ms a call: {slow['callbacks']} callbacks at once",
        f"{slow['succeeded']}/{slow['callbacks']} ok",
        "slow_idp",
    )
    if slow["failures"]:
        row("  failures", ", ".join(f"{n} {why}" for why, n in slow["failures"].items()))
    row("  callback p50 / p99", f"{slow['p50_ms']:.0f} / {slow['p99_ms']:.0f} ms", watch=True)
    row(
        "  the IdP's own time per callback",
        f"{slow['idp_ms_per_callback']:.0f} ms ({slow['idp_calls_per_callback']:.1f} calls)",
    )
    row("  the bridge's added p99", f"{slow['added_p99_ms']:.0f} ms", watch=True)
    row(
        f"  what its CPU explains ({slow['callbacks']} x CPU per sign-in)",
        f"{slow['cpu_explains_ms']:.0f} ms",
    )
    row(
        "  the bridge's CPU per callback in the burst",
        f"{slow['bridge_cpu_ms_per_callback']:.2f} ms",
    )
    row("  new IdP connections in the burst", f"{slow['new_idp_connections']}")
    for name, value in f["memory_mib"].items():
        row(f"resident memory, {name}", f"{value:.1f} MiB")
    row("  spread between the readings", f"{f['memory_spread'] * 100:.1f} %", "memory")
    row(
        "process start to /readyz 200, median",
        f"{f['ready_s']:.2f} s (max {f['ready_s_max']:.2f})",
        "ready",
    )
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = [
        f"bench: {machine['cpus']} cores, of which other processes used "
        f"{machine['other_processes_cores']:.2f} on average (load average "
        f"{machine['load_before']} before, {machine['load_after']} after)",
        f"server: uvicorn {machine['uvicorn']} with {machine['server']}; {plan.rounds} rounds x "
        f"{plan.duration:g} s of wrk -t1 -c{plan.connections} per contender",
        "",
        "  ".join(
            h.ljust(w) for h, w in zip(("figure", "value", "budget", ""), widths, strict=True)
        ).rstrip(),
        "  ".join("-" * w for w in widths),
    ]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    missed = [name for name, v in budgets.items() if not v["pass"]]
    lines.append(
        f"budgets met: {len(budgets) - len(missed)}/{len(budgets)}"
        + (f"; missed: {', '.join(missed)}" if missed else "")
    )
    return "\n".join(lines)


def _busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy since boot, all cores together."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def _own_seconds() -> float:
    """CPU seconds of this run: this process and every process it started and reaped."""
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def machine_facts() -> dict[str, Any]:
    from importlib.metadata import version

    try:
        import httptools  # noqa: F401
        import uvloop  # noqa: F401

        server = "uvloop + httptools"
    except ImportError:
        server = "asyncio + h11: uvicorn[standard] is not installed, not the production setup"
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()  # noqa: S607
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "uvicorn": version("uvicorn"),
        "starlette": version("starlette"),
        "server": server,
        "node": node,
        "load_before": " ".join(f"{x:.1f}" for x in os.getloadavg()),
    }


@contextlib.contextmanager
def _sigterm_as_exit() -> Iterator[None]:
    """A SIGTERM (make interrupted) still stops every server through the finally blocks."""
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="fewer, shorter rounds and smaller batches"
    )
    parser.add_argument("--rounds", type=int, help="rounds of /auth measurements")
    parser.add_argument("--duration", type=float, help="seconds of wrk per contender per round")
    parser.add_argument("--json", type=Path, default=BENCH / "results.json", help="where to write")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, settings)")
    parser.add_argument(
        "--auth-only",
        action="store_true",
        help="only /auth against the bare endpoint: a change's before and after",
    )
    parser.add_argument(
        "--profile", type=Path, help="with --auth-only: py-spy the bridge under load, to PATH"
    )
    parser.add_argument(
        "--floor",
        action="store_true",
        help="with --auth-only: bench/floor.py beside them, the libraries' work alone",
    )
    parser.add_argument(
        "--baseline",
        metavar="REF",
        help="with --auth-only: the bridge at this commit beside the working tree's",
    )
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    if args.rounds or args.duration:
        from dataclasses import replace

        plan = replace(
            plan, rounds=args.rounds or plan.rounds, duration=args.duration or plan.duration
        )
    if not (EXPRESS / "node_modules").is_dir():
        sys.exit("bench/express has no node_modules: run `make bench` (it runs npm ci there)")
    ensure_wrk()
    if args.auth_only:
        asyncio.run(auth_only(plan, args))
        return
    machine = machine_facts()
    started = time.monotonic()
    busy, own = _busy_seconds(), _own_seconds()
    try:
        import uvloop

        runner: Callable[..., Any] = uvloop.run
    except ImportError:
        runner = asyncio.run
    with _sigterm_as_exit():
        results = runner(main_async(plan, args))
    machine["load_after"] = " ".join(f"{x:.1f}" for x in os.getloadavg())
    machine["seconds"] = round(time.monotonic() - started, 1)
    # What the rest of the machine took meanwhile: the figures are only as quiet as this.
    others = (_busy_seconds() - busy) - (_own_seconds() - own)
    machine["other_processes_cores"] = round(max(0.0, others) / machine["seconds"], 2)
    report = table(plan, results, machine)
    print(report)
    document = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine,
        "plan": asdict(plan),
        **results,
        "table": report,
    }
    args.json.write_text(json.dumps(document, indent=2) + "\n")
    log(f"wrote {args.json} ({machine['seconds']} s)")


if __name__ == "__main__":
    main()
