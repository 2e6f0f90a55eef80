"""The outbound transport: a burst of calls waits its turn instead of crowding httpcore's pool."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from bridge import outbound
from bridge.settings import Settings
from bridge.web import outbound_transport


class SlowServer(httpx.AsyncBaseTransport):
    """Answers every request after ``delay`` seconds and records how many were in at once."""

    def __init__(self, delay: float = 0.01, fail: bool = False) -> None:
        self.delay = delay
        self.fail = fail
        self.inside = self.most = self.calls = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        self.inside += 1
        self.most = max(self.most, self.inside)
        try:
            await asyncio.sleep(self.delay)
            if self.fail:
                raise httpx.ConnectError("refused", request=request)
        finally:
            self.inside -= 1
        return httpx.Response(200, stream=Body())


class Body(httpx.AsyncByteStream):
    """A body read from the network, as a real connection's would be."""

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b'{"ok": true}'


def test_a_burst_waits_for_free_slots_and_every_call_succeeds() -> None:
    server = SlowServer()

    async def main() -> list[int]:
        async with httpx.AsyncClient(transport=outbound.BoundedTransport(server, 4)) as client:
            answers = await asyncio.gather(*(client.get("http://idp.test/") for _ in range(50)))
        return [a.status_code for a in answers]

    assert asyncio.run(main()) == [200] * 50
    assert server.most == 4
    assert server.calls == 50


def test_a_slot_is_held_until_the_body_is_closed() -> None:
    server = SlowServer(delay=0)

    async def main() -> None:
        transport = outbound.BoundedTransport(server, 1)
        async with httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(5, pool=0.05)) as c:
            async with c.stream("GET", "http://idp.test/"):
                with pytest.raises(httpx.PoolTimeout):
                    await c.get("http://idp.test/")
            assert (await c.get("http://idp.test/")).status_code == 200

    asyncio.run(main())


def test_a_failed_call_gives_its_slot_back() -> None:
    server = SlowServer(delay=0, fail=True)

    async def main() -> None:
        transport = outbound.BoundedTransport(server, 1)
        async with httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(5, pool=0.05)) as c:
            for _ in range(3):
                with pytest.raises(httpx.ConnectError):
                    await c.get("http://idp.test/")
        assert server.calls == 3

    asyncio.run(main())


def test_the_pool_keeps_every_connection_it_may_open_alive(settings: Settings) -> None:
    """Fewer kept alive than allowed makes httpcore close idle connections under load."""
    transport = outbound_transport(settings)
    assert isinstance(transport, outbound.BoundedTransport)
    pool = transport._transport._pool  # type: ignore[attr-defined]
    assert pool._max_connections == outbound.MAX_CONNECTIONS
    assert pool._max_keepalive_connections == outbound.MAX_CONNECTIONS


def test_a_body_already_in_memory_holds_no_slot() -> None:
    mock = httpx.MockTransport(lambda request: httpx.Response(200, json={"ok": True}))

    async def main() -> None:
        transport = outbound.BoundedTransport(mock, 1)
        async with httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(5, pool=0.05)) as c:
            for _ in range(3):
                assert (await c.get("http://idp.test/")).status_code == 200

    asyncio.run(main())
