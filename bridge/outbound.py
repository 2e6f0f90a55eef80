"""The one pooled HTTP transport every IdP and Tiledesk call goes through, and its limits.

httpcore's pool rescans its whole queue against every connection each time a
call starts or ends, so a burst of calls beyond the pool's size costs CPU that
grows with the square of the calls in flight. Calls therefore wait their turn
here, in a plain FIFO semaphore, and reach httpcore only when a connection is
theirs; the wait counts as the pool timeout (``httpx.PoolTimeout``, which the
relying party reports as ``idp_timeout``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import httpx

#: Calls in flight at once; the rest wait their turn, first come first served.
MAX_CONNECTIONS = 32
#: Every connection may stay open: with fewer kept alive than allowed, httpcore closes
#: idle ones whenever the pool holds more than that, and a burst opens one per call.
LIMITS = httpx.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_CONNECTIONS)


class BoundedTransport(httpx.AsyncBaseTransport):
    """At most ``slots`` requests inside ``transport`` at once, each until its body is closed."""

    def __init__(self, transport: httpx.AsyncBaseTransport, slots: int = MAX_CONNECTIONS) -> None:
        self._transport = transport
        self._slots = asyncio.Semaphore(slots)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeout = request.extensions.get("timeout", {}).get("pool")
        try:
            async with asyncio.timeout(timeout):
                await self._slots.acquire()
        except TimeoutError:
            raise httpx.PoolTimeout(
                f"no outbound connection free within {timeout}s", request=request
            ) from None
        try:
            response = await self._transport.handle_async_request(request)
        except BaseException:
            self._slots.release()
            raise
        if isinstance(response.stream, httpx.ByteStream):
            # A body already in memory (a test's mock) holds no connection.
            self._slots.release()
            return response
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _ReleasingStream(response.stream, self._slots.release)
        return response

    async def aclose(self) -> None:
        await self._transport.aclose()


class _ReleasingStream(httpx.AsyncByteStream):
    """A response body that gives its slot back once, when it is closed."""

    def __init__(self, stream: httpx.AsyncByteStream, release: Callable[[], None]) -> None:
        self._stream = stream
        self._release: Callable[[], None] | None = release

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            release, self._release = self._release, None
            if release is not None:
                release()
