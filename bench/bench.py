"""Speed and memory figures for the hot paths, in-process against the fake IdP.

Prints numbers; asserts nothing (timed assertions flake on a busy machine).
Run with `make bench`.
"""

from __future__ import annotations

import asyncio
import resource
import statistics
import sys
import time
import warnings
from pathlib import Path

import httpx
import respx

warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bridge.settings import parse_settings  # noqa: E402
from bridge.web import create_app  # noqa: E402
from tests.conftest import ISSUERS, PUBLIC_URL, base_settings  # noqa: E402
from tests.idp import FakeIdP  # noqa: E402

LOGINS = 300
AUTH_CALLS = 3000


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def main() -> None:
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as router:
        idp = FakeIdP(issuer=ISSUERS["acme"]).install(router)
        for name, issuer in ISSUERS.items():
            if name != "acme":
                FakeIdP(issuer=issuer).install(router)
        app = create_app(parse_settings(base_settings()), warm_up=False)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=PUBLIC_URL) as client:
            login_times = []
            for i in range(LOGINS):
                idp.user = {**idp.user, "sub": f"user-{i}"}
                started = time.perf_counter()
                start = await client.get("/login/acme")
                code, state = idp.authorize(start.headers["location"])
                done = await client.get("/callback/acme", params={"code": code, "state": state})
                login_times.append(time.perf_counter() - started)
                assert done.status_code == 303, done.text
            rss_after_logins = rss_mib()

            auth_times = []
            started_all = time.perf_counter()
            for _ in range(AUTH_CALLS):
                started = time.perf_counter()
                answer = await client.post("/auth", headers={"Origin": PUBLIC_URL})
                auth_times.append(time.perf_counter() - started)
                assert answer.status_code == 200
            auth_total = time.perf_counter() - started_all

    def ms(values: list[float], q: float) -> float:
        return statistics.quantiles(values, n=100)[int(q) - 1] * 1000

    print(f"login flow (bridge side, IdP mocked): {LOGINS} logins")
    print(f"  p50 {ms(login_times, 50):.2f} ms   p95 {ms(login_times, 95):.2f} ms")
    print(f"POST /auth: {AUTH_CALLS} calls, {AUTH_CALLS / auth_total:.0f} req/s in-process")
    print(f"  p50 {ms(auth_times, 50):.2f} ms   p95 {ms(auth_times, 95):.2f} ms")
    print(f"peak RSS: {rss_after_logins:.1f} MiB after logins, {rss_mib():.1f} MiB at the end")


if __name__ == "__main__":
    asyncio.run(main())
