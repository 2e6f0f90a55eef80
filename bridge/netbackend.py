"""httpcore's sockets on asyncio's own transports, for the outbound pool.

httpx hands every connection's bytes to httpcore, which under asyncio reaches the
socket through anyio. That layer costs more than the request: each read and write
opens a cancel scope with a timer, each send yields once, and before every request
starts and after every one ends the pool asks each idle connection whether its
socket is readable (a server that closed it), which anyio answers by building a
dictionary of socket attributes and calling ``poll()``. With the pool holding a
connection per concurrent sign-in, that check alone is tens of microseconds per
connection per call (the hot spot named in encode/httpx#3215; httpcore kept anyio,
encode/httpcore#930).

This backend speaks httpcore's public network-backend interface over an
:class:`asyncio.Protocol`: data is buffered as it arrives (bounded, with reading
paused above a high-water mark), so "is readable" is a look at that state; a read
waits on one future, a request's head and body leave in one write, which waits only
when the transport pushes back, and TLS is ``loop.start_tls``. Every failure is
raised as the httpcore exception anyio's backend raises for it, with the OS or TLS
error as its cause, so httpx, the relying party's error mapping and ``check``'s
diagnosis see what they saw before. HTTP itself stays httpcore's and h11's.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Iterable
from typing import Any, cast

import httpcore
import httpx

#: Reading pauses when this much has arrived unread, and resumes below the low mark.
HIGH_WATER = 256 * 1024
LOW_WATER = 64 * 1024
#: Writes wait for the next read, or until this much is waiting to go.
COALESCE = 64 * 1024

#: httpcore's socket option: ``setsockopt``'s arguments.
SocketOption = (
    tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]
)


class _Connection(asyncio.Protocol):
    """One TCP (then perhaps TLS) connection's state, as asyncio reports it."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.eof = False
        self.lost = False
        self.error: BaseException | None = None
        self.reading_paused = False
        self._readable: asyncio.Future[None] | None = None
        self._writable: asyncio.Future[None] | None = None

    # --- what asyncio tells the protocol ---------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > HIGH_WATER and self.transport is not None:
            self.transport.pause_reading()
            self.reading_paused = True
        self._wake_reader()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake_reader()
        return False  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.error = exc
        self._wake_reader()
        self._wake_writer()

    def pause_writing(self) -> None:
        if self._writable is None:
            self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        self._wake_writer()

    # --- what the stream waits for ------------------------------------------------------

    def _wake_reader(self) -> None:
        if self._readable is not None and not self._readable.done():
            self._readable.set_result(None)
        self._readable = None

    def _wake_writer(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        self._writable = None

    async def readable(self) -> None:
        if self._readable is None:
            self._readable = asyncio.get_running_loop().create_future()
        await asyncio.shield(self._readable)

    async def writable(self) -> None:
        if self._writable is not None:
            await asyncio.shield(self._writable)

    def take(self, max_bytes: int) -> bytes:
        if len(self.buffer) <= max_bytes:  # the usual case: all of it
            data = bytes(self.buffer)
            self.buffer.clear()
        else:
            data = bytes(self.buffer[:max_bytes])
            del self.buffer[:max_bytes]
        if self.reading_paused and len(self.buffer) < LOW_WATER and self.transport is not None:
            self.reading_paused = False
            self.transport.resume_reading()
        return data


class AsyncioStream(httpcore.AsyncNetworkStream):
    """httpcore's view of one connection."""

    def __init__(self, connection: _Connection) -> None:
        self._connection = connection
        #: What httpcore wrote that has not gone to the transport yet (see :meth:`write`).
        self._pending = bytearray()

    @property
    def _transport(self) -> asyncio.Transport:
        transport = self._connection.transport
        assert transport is not None
        return transport

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        if self._pending:
            await self._flush(timeout)
        connection = self._connection
        if not connection.buffer and not connection.eof and not connection.lost:
            try:
                async with asyncio.timeout(timeout):
                    await connection.readable()
            except TimeoutError:
                raise httpcore.ReadTimeout(f"no data within {timeout}s") from None
        if connection.buffer:
            return connection.take(max_bytes)
        if connection.error is not None:
            raise httpcore.ReadError(str(connection.error)) from connection.error
        return b""  # the peer closed its side: httpcore reads that as the end

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        """Held until httpcore next reads (or ``COALESCE`` bytes wait), then sent at once.

        httpcore writes a request's head and its body separately, then reads the answer:
        on the socket that is two sends, each waking the server, for a token request of
        a few hundred bytes. It reads nothing before the request is whole, so holding the
        pieces until then changes no exchange; a long body still goes in bounded pieces.
        """
        if not buffer:
            return
        self._refuse_if_closed()
        self._pending += buffer
        if len(self._pending) >= COALESCE:
            await self._flush(timeout)

    def _refuse_if_closed(self) -> None:
        connection = self._connection
        if connection.lost or self._transport.is_closing():
            error = connection.error
            raise httpcore.WriteError(str(error or "the connection is closed")) from error

    async def _flush(self, timeout: float | None) -> None:
        connection = self._connection
        data = bytes(self._pending)
        self._pending.clear()
        self._refuse_if_closed()
        self._transport.write(data)
        try:
            async with asyncio.timeout(timeout):
                await connection.writable()
        except TimeoutError:
            raise httpcore.WriteTimeout(f"the peer took nothing for {timeout}s") from None
        if connection.lost and connection.error is not None:
            raise httpcore.WriteError(str(connection.error)) from connection.error

    async def aclose(self) -> None:
        self._pending.clear()  # a request nobody read the answer to is abandoned
        self._transport.close()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        if self._pending:  # a proxy's CONNECT has been answered, so there is none
            await self._flush(timeout)
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                transport = await loop.start_tls(
                    self._transport,
                    self._connection,
                    ssl_context,
                    server_hostname=server_hostname,
                )
        except TimeoutError:
            self._transport.close()
            raise httpcore.ConnectTimeout(f"no TLS handshake within {timeout}s") from None
        except (OSError, EOFError) as exc:  # ssl.SSLError is an OSError
            self._transport.close()
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
        if transport is None:  # the connection was lost during the handshake
            raise httpcore.ConnectError("the connection closed during the TLS handshake")
        self._connection.transport = transport
        return self

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            # Idle, and yet something arrived or the peer closed: the pool drops it.
            connection = self._connection
            return bool(connection.buffer) or connection.eof or connection.lost
        if info == "ssl_object":
            return self._transport.get_extra_info("ssl_object")
        if info == "client_addr":
            return self._transport.get_extra_info("sockname")
        if info == "server_addr":
            return self._transport.get_extra_info("peername")
        if info == "socket":
            return self._transport.get_extra_info("socket")
        return None


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    """Connections for httpcore's pool, made by the running event loop."""

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        local_addr = (local_address, 0) if local_address else None
        transport, connection = await _connected(
            loop.create_connection(_Connection, host, port, local_addr=local_addr), timeout
        )
        # asyncio sets TCP_NODELAY on its TCP sockets; the operator's options come on top.
        sock = transport.get_extra_info("socket")
        for option in socket_options or ():
            sock.setsockopt(*option)
        return AsyncioStream(connection)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        _transport, connection = await _connected(
            loop.create_unix_connection(_Connection, path), timeout
        )
        return AsyncioStream(connection)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


async def _connected(
    opening: Awaitable[tuple[asyncio.BaseTransport, _Connection]], timeout: float | None
) -> tuple[asyncio.BaseTransport, _Connection]:
    """A connection the loop opens, its failures raised as httpcore's connect errors."""
    try:
        async with asyncio.timeout(timeout):
            return await opening
    except TimeoutError:
        raise httpcore.ConnectTimeout(f"no connection within {timeout}s") from None
    except OSError as exc:
        raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc


def install(transport: httpx.AsyncHTTPTransport) -> httpx.AsyncHTTPTransport:
    """Give ``transport``'s connection pool (direct or through a proxy) this backend.

    httpx builds its httpcore pool itself and takes no backend; the pool keeps the one
    it hands each new connection in ``_network_backend``. Checked here, so that an
    httpx or httpcore that stores them elsewhere fails at start-up, not silently.
    """
    pool = getattr(transport, "_pool", None)
    if not isinstance(pool, httpcore.AsyncConnectionPool) or not hasattr(pool, "_network_backend"):
        raise RuntimeError("this httpx keeps its httpcore pool where the bridge cannot reach it")
    pool._network_backend = AsyncioBackend()
    return transport
