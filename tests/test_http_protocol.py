"""uvicorn's protocol with one write per answer (bridge.http_protocol), on a real server.

Each case runs uvicorn in-process on loopback, on asyncio's own loop and on uvloop (what
``serve`` runs), with the socket's transport wrapped by a recorder below the protocol's,
so the tests see every write that reaches the socket. A raw client reads the bytes.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import uvicorn
import uvloop
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from bridge.http_protocol import HOLD_LIMIT, OneWriteProtocol, OneWriteTransport
from bridge.settings import parse_settings
from bridge.web import create_app
from tests.conftest import base_settings

BIG = bytes(range(256)) * 4096  # 1 MiB: written through, never held
LOOPS: dict[str, Callable[..., Any]] = {"asyncio": asyncio.run, "uvloop": uvloop.run}

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


@pytest.fixture(params=sorted(LOOPS))
def run(request: pytest.FixtureRequest) -> Callable[..., Any]:
    return LOOPS[request.param]


class Recorder:
    """The socket's transport, with every write and writelines call kept in ``writes``."""

    def __init__(self, transport: asyncio.Transport, writes: list[bytes]) -> None:
        self._transport = transport
        self.writes = writes

    def write(self, data: bytes) -> None:
        if data:
            self.writes.append(bytes(data))
        self._transport.write(data)

    def writelines(self, chunks: Any) -> None:
        chunks = [bytes(chunk) for chunk in chunks]
        self.writes.append(b"".join(chunks))
        self._transport.writelines(chunks)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def recording(base: type[HttpToolsProtocol], writes: list[bytes]) -> type[HttpToolsProtocol]:
    class Recording(base):  # type: ignore[valid-type,misc]
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(Recorder(transport, writes))

    return Recording


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """/small, /empty (a redirect), /big, /stream (a chunk, then waits for /go)."""
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"first", "more_body": True})
        await STREAM_GO[0].wait()
        await send({"type": "http.response.body", "body": b"second"})
        return
    body = {"/small": b'{"ok":true}', "/empty": b"", "/big": BIG}[path]
    status = 303 if path == "/empty" else 200
    headers = [(b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


#: The /stream app's go-ahead: a new event for each test's loop.
STREAM_GO: list[asyncio.Event] = []


async def serving(
    protocol: type[HttpToolsProtocol], client: Callable[[int], Awaitable[Any]], target: Any = app
) -> Any:
    """uvicorn on a free loopback port with ``protocol``, while ``client(port)`` runs."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        target, http=protocol, lifespan="off", log_config=None, access_log=False
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            await asyncio.sleep(0.005)
        async with asyncio.timeout(10):
            return await client(sock.getsockname()[1])
    finally:
        server.should_exit = True
        await task


async def read_answer(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return head, await reader.readexactly(length)


async def get(port: int, *paths: str, close: bool = False) -> list[tuple[bytes, bytes]]:
    """The paths, pipelined on one connection; their answers, in order."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    last = len(paths) - 1
    writer.write(
        b"".join(
            f"GET {p} HTTP/1.1\r\nhost: t\r\n{'connection: close' if close and i == last else ''}"
            f"\r\n\r\n".encode()
            for i, p in enumerate(paths)
        )
    )
    answers = [await read_answer(reader) for _ in paths]
    if close:
        assert await reader.read() == b""  # the server closed, after the whole answer
    writer.close()
    return answers


def test_an_answer_leaves_in_one_write_head_and_body_together(run: Any) -> None:
    writes: list[bytes] = []
    ((head, body),) = run(serving(recording(OneWriteProtocol, writes), lambda p: get(p, "/small")))
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and body == b'{"ok":true}'
    assert writes == [head + body]


def test_uvicorns_own_protocol_writes_the_head_and_the_body_apart(run: Any) -> None:
    """What the protocol is for: the stock one sends every answer in two writes."""
    writes: list[bytes] = []
    ((head, body),) = run(serving(recording(HttpToolsProtocol, writes), lambda p: get(p, "/small")))
    assert writes == [head, body]


def test_a_redirect_without_a_body_is_one_write(run: Any) -> None:
    writes: list[bytes] = []
    ((head, body),) = run(serving(recording(OneWriteProtocol, writes), lambda p: get(p, "/empty")))
    assert head.startswith(b"HTTP/1.1 303 See Other\r\n") and body == b""
    assert writes == [head]


def test_pipelined_answers_come_whole_and_in_order_one_write_each(run: Any) -> None:
    writes: list[bytes] = []
    answers = run(
        serving(recording(OneWriteProtocol, writes), lambda p: get(p, "/small", "/empty", "/small"))
    )
    assert [body for _head, body in answers] == [b'{"ok":true}', b"", b'{"ok":true}']
    assert writes == [head + body for head, body in answers]


def test_a_large_body_is_not_held_and_arrives_intact(run: Any) -> None:
    writes: list[bytes] = []
    ((head, body),) = run(serving(recording(OneWriteProtocol, writes), lambda p: get(p, "/big")))
    assert body == BIG
    assert b"".join(writes) == head + BIG
    assert len(writes) == 1  # the head joined the body in one writelines


def test_the_last_answer_before_connection_close_is_sent_whole(run: Any) -> None:
    writes: list[bytes] = []
    answers = run(
        serving(recording(OneWriteProtocol, writes), lambda p: get(p, "/small", close=True))
    )
    assert answers[0][1] == b'{"ok":true}'
    assert b"".join(writes) == answers[0][0] + answers[0][1]


def test_a_streamed_chunk_is_not_held_back_waiting_for_the_next(run: Any) -> None:
    """The head and the first chunk leave at the end of the step: the client reads them
    while the app still waits, and only then lets it finish."""
    writes: list[bytes] = []

    async def client(port: int) -> tuple[bytes, bytes]:
        STREAM_GO[:] = [asyncio.Event()]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /stream HTTP/1.1\r\nhost: t\r\n\r\n")
        head = await reader.readuntil(b"\r\n\r\n")
        first = await reader.readuntil(b"first\r\n")  # chunked: "5\r\nfirst\r\n"
        STREAM_GO[0].set()
        rest = await reader.readuntil(b"0\r\n\r\n")
        writer.close()
        return head, first + rest

    head, chunks = run(serving(recording(OneWriteProtocol, writes), client))
    assert b"transfer-encoding: chunked" in head
    assert chunks == b"5\r\nfirst\r\n6\r\nsecond\r\n0\r\n\r\n"
    assert writes == [head + b"5\r\nfirst\r\n", b"6\r\nsecond\r\n0\r\n\r\n"]


def test_the_bridge_answers_through_it(run: Any) -> None:
    """The bridge's own app behind the protocol: a page with a body, headers intact."""
    writes: list[bytes] = []
    bridge = create_app(parse_settings(base_settings()))
    ((head, body),) = run(
        serving(recording(OneWriteProtocol, writes), lambda p: get(p, "/healthz"), bridge)
    )
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"x-request-id: " in head
    assert writes == [head + body]


class FakeLoop:
    def __init__(self) -> None:
        self.soon: list[Callable[[], None]] = []

    def call_soon(self, callback: Callable[[], None]) -> None:
        self.soon.append(callback)


class FakeTransport:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.calls.append(("write", bytes(data)))

    def writelines(self, chunks: Any) -> None:
        self.calls.append(("writelines", [bytes(c) for c in chunks]))

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.calls.append(("close", None))
        self.closing = True

    def abort(self) -> None:
        self.calls.append(("abort", None))
        self.closing = True

    def get_write_buffer_size(self) -> int:
        return 7


def one_write(transport: FakeTransport) -> tuple[OneWriteTransport, FakeLoop]:
    loop = FakeLoop()
    return OneWriteTransport(transport, loop), loop  # type: ignore[arg-type]


def test_close_sends_what_is_held_first_and_abort_drops_it() -> None:
    closed, abandoned = FakeTransport(), FakeTransport()
    first, _ = one_write(closed)
    first.write(b"head")
    assert first.get_write_buffer_size() == 7 + 4
    first.close()
    second, loop = one_write(abandoned)
    second.write(b"head")
    second.abort()
    for callback in loop.soon:
        callback()
    assert closed.calls == [("write", b"head"), ("close", None)]
    assert abandoned.calls == [("abort", None)]


def test_a_held_write_is_released_at_the_end_of_the_step_and_never_twice() -> None:
    transport = FakeTransport()
    wrapped, loop = one_write(transport)
    wrapped.write(bytearray(b"head"))
    wrapped.write(b"")  # an empty body: the answer is complete
    wrapped.write(b"next")
    assert transport.calls == [("write", b"head")]
    for callback in loop.soon:
        callback()
    assert transport.calls == [("write", b"head"), ("write", b"next")]
    assert len(loop.soon) == 2  # one release per held write


def test_writes_past_the_hold_limit_are_never_held() -> None:
    transport = FakeTransport()
    wrapped, loop = one_write(transport)
    big = b"x" * HOLD_LIMIT
    wrapped.write(big)
    wrapped.write(b"head")
    wrapped.write(big)
    assert transport.calls == [("write", big), ("writelines", [b"head", big])]
    assert loop.soon and wrapped.get_write_buffer_size() == 7
