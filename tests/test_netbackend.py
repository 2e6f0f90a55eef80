"""The outbound pool's sockets on asyncio's transports (bridge.netbackend), on real sockets.

Each case runs on asyncio's own loop and on uvloop (what ``serve`` runs), against a
small HTTP/1.1 server on loopback that counts its connections.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpcore
import httpx
import pytest
import uvloop

from bridge import netbackend
from bridge.settings import parse_settings
from bridge.web import outbound_transport
from tests.conftest import base_settings
from tests.test_selftest import _self_signed

BIG = bytes(range(256)) * 4096  # 1 MiB, past the backend's high-water mark


class Server:
    """Answers by path: /small, /big, /close (then closes), /hang, /half, POST /length."""

    def __init__(self) -> None:
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def start(self, context: ssl.SSLContext | None = None) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=context)
        port = self.server.sockets[0].getsockname()[1]
        return f"{'https' if context else 'http'}://127.0.0.1:{port}"

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                request_line, *lines = head.decode("latin-1").split("\r\n")
                _method, path, _version = request_line.split(" ")
                headers = dict(line.lower().split(": ", 1) for line in lines if line)
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                if path == "/hang":
                    await asyncio.sleep(3600)
                if path == "/half":
                    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n0123456789")
                    await writer.drain()
                    return
                payload = {
                    "/small": b"ok",
                    "/big": BIG,
                    "/close": b"bye",
                    "/length": str(len(body)).encode(),
                }[path]
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(payload) + payload
                )
                await writer.drain()
                if path == "/close":
                    await asyncio.sleep(0.05)  # idle in the client's pool, then gone
                    return
        finally:
            writer.close()


LOOPS: dict[str, Callable[..., Any]] = {
    "asyncio": asyncio.run,
    "uvloop": uvloop.run,
}


@pytest.fixture(params=sorted(LOOPS))
def run(request: pytest.FixtureRequest) -> Callable[..., Any]:
    return LOOPS[request.param]


def client(verify: ssl.SSLContext | bool = True, timeout: float = 5.0) -> httpx.AsyncClient:
    transport = netbackend.install(httpx.AsyncHTTPTransport(verify=verify, retries=0))
    return httpx.AsyncClient(transport=transport, timeout=timeout, trust_env=False)


def causes(exc: BaseException) -> Iterator[BaseException]:
    seen: BaseException | None = exc
    while seen is not None:
        yield seen
        seen = seen.__cause__ or seen.__context__


def test_sequential_calls_share_one_kept_alive_connection(run: Any) -> None:
    async def main() -> tuple[list[bytes], int]:
        server = Server()
        url = await server.start()
        async with client() as http:
            bodies = [(await http.get(f"{url}/small")).content for _ in range(5)]
        await server.stop()
        return bodies, server.connections

    assert run(main()) == ([b"ok"] * 5, 1)


def test_a_connection_the_server_closed_while_idle_is_replaced_without_an_error(
    run: Any,
) -> None:
    async def main() -> tuple[bytes, bytes, int]:
        server = Server()
        url = await server.start()
        async with client() as http:
            first = (await http.get(f"{url}/close")).content
            await asyncio.sleep(0.2)  # the server has closed it by now
            second = (await http.get(f"{url}/small")).content
        await server.stop()
        return first, second, server.connections

    assert run(main()) == (b"bye", b"ok", 2)


def test_the_idle_check_answers_from_state_without_a_system_call(
    run: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before every call starts and after it ends, httpcore asks every idle connection
    whether its socket is readable; anyio's backend polls the socket for each one."""

    def no_poll(sock: Any) -> bool:
        raise AssertionError("the pool polled a socket")

    monkeypatch.setattr("httpcore._backends.anyio.is_socket_readable", no_poll)
    monkeypatch.setattr("httpcore._backends.sync.is_socket_readable", no_poll)

    async def main() -> list[int]:
        server = Server()
        url = await server.start()
        async with client() as http:
            # Four connections in the pool, then calls that each find three idle.
            await asyncio.gather(*(http.get(f"{url}/small") for _ in range(4)))
            statuses = [(await http.get(f"{url}/small")).status_code for _ in range(3)]
        await server.stop()
        return statuses

    assert run(main()) == [200, 200, 200]


def test_a_body_past_the_high_water_mark_arrives_whole(run: Any) -> None:
    async def main() -> tuple[bytes, bytes]:
        server = Server()
        url = await server.start()
        async with client() as http:
            big = (await http.get(f"{url}/big")).content
            length = (await http.post(f"{url}/length", content=BIG * 3)).content
        await server.stop()
        return big, length

    big, length = run(main())
    assert big == BIG
    assert length == str(len(BIG) * 3).encode()


def test_a_request_head_and_body_leave_in_one_write(
    run: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """httpcore writes a POST's head and body apart: two sends, the server woken twice."""
    writes: list[int] = []
    made = netbackend._Connection.connection_made

    def counting(self: netbackend._Connection, transport: Any) -> None:
        made(self, transport)
        real = self.transport

        class Counted:
            def __getattr__(self, name: str) -> Any:
                return getattr(real, name)

            def write(self, data: bytes) -> None:
                writes.append(len(data))
                real.write(data)  # type: ignore[union-attr]

        self.transport = Counted()  # type: ignore[assignment]

    monkeypatch.setattr(netbackend._Connection, "connection_made", counting)

    async def pieces() -> AsyncIterator[bytes]:
        for _ in range(8):
            yield bytes(netbackend.COALESCE)

    async def main() -> tuple[bytes, list[int], bytes]:
        server = Server()
        url = await server.start()
        async with client() as http:
            small = (await http.post(f"{url}/length", content=b"grant_type=x&code=y")).content
            one_write = list(writes)
            length = {"content-length": str(8 * netbackend.COALESCE)}
            answer = await http.post(f"{url}/length", content=pieces(), headers=length)
            streamed = answer.content
        await server.stop()
        return small, one_write, streamed

    small, one_write, streamed = run(main())
    assert small == b"19"
    assert len(one_write) == 1 and one_write[0] > 19  # the head and the body together
    # A streamed body still leaves piece by piece, never held whole.
    assert streamed == str(8 * netbackend.COALESCE).encode()
    assert len(writes) == 1 + 8
    assert max(writes[1:]) < netbackend.COALESCE + 1024


def test_a_server_that_never_answers_is_a_read_timeout(run: Any) -> None:
    async def main() -> BaseException:
        server = Server()
        url = await server.start()
        async with client(timeout=0.2) as http:
            with pytest.raises(httpx.ReadTimeout) as caught:
                await http.get(f"{url}/hang")
        await server.stop()
        return caught.value

    assert isinstance(run(main()), httpx.ReadTimeout)


def test_a_call_cancelled_mid_read_leaves_the_pool_usable(run: Any) -> None:
    """The relying party bounds a whole IdP call with its own deadline (a cancellation)."""

    async def main() -> tuple[bytes, int]:
        server = Server()
        url = await server.start()
        async with client() as http:
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.1):
                    await http.get(f"{url}/hang")
            after = (await http.get(f"{url}/small")).content
        await server.stop()
        return after, server.connections

    assert run(main()) == (b"ok", 2)  # the cancelled connection is not reused


def test_a_body_cut_short_is_a_protocol_error_not_a_short_answer(run: Any) -> None:
    async def main() -> type[BaseException]:
        server = Server()
        url = await server.start()
        async with client() as http:
            with pytest.raises(httpx.HTTPError) as caught:
                await http.get(f"{url}/half")
        await server.stop()
        return type(caught.value)

    assert run(main()) is httpx.RemoteProtocolError


def test_a_refused_connection_is_a_connect_error_caused_by_the_refusal(run: Any) -> None:
    async def main() -> BaseException:
        server = Server()
        url = await server.start()
        await server.stop()
        await asyncio.sleep(0.05)
        async with client() as http:
            with pytest.raises(httpx.ConnectError) as caught:
                await http.get(f"{url}/small")
        return caught.value

    assert any(isinstance(c, ConnectionRefusedError) for c in causes(run(main())))


def test_tls_verifies_the_servers_certificate(run: Any, tmp_path: Path) -> None:
    cert_path, key_path = _self_signed(tmp_path)
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert_path, key_path)
    trusting = ssl.create_default_context(cafile=str(cert_path))

    async def main() -> tuple[bytes, str, BaseException]:
        server = Server()
        url = await server.start(server_context)
        async with client(verify=trusting) as http:
            answer = await http.get(f"{url}/big")
            version = answer.extensions["network_stream"].get_extra_info("ssl_object").version()
        async with client() as http:  # the system's CAs: the self-signed one is not among them
            with pytest.raises(httpx.ConnectError) as caught:
                await http.get(f"{url}/small")
        await server.stop()
        return answer.content, version, caught.value

    body, version, refused = run(main())
    assert body == BIG
    assert version in ("TLSv1.2", "TLSv1.3")
    verify_errors = [c for c in causes(refused) if isinstance(c, ssl.SSLCertVerificationError)]
    assert [e.verify_message for e in verify_errors] == ["self-signed certificate"]


async def _connect_proxy() -> tuple[asyncio.Server, list[str]]:
    """A forward proxy that opens CONNECT tunnels, as an egress proxy does for https."""
    tunnels: list[str] = []

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        method, target, _version = head.decode("latin-1").split("\r\n")[0].split(" ")
        assert method == "CONNECT"
        tunnels.append(target)
        host, port = target.rsplit(":", 1)
        upstream_reader, upstream_writer = await asyncio.open_connection(host, int(port))
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()
        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))

    return await asyncio.start_server(serve, "127.0.0.1", 0), tunnels


def test_tls_through_a_proxy_tunnel(run: Any, tmp_path: Path) -> None:
    cert_path, key_path = _self_signed(tmp_path)
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert_path, key_path)
    trusting = ssl.create_default_context(cafile=str(cert_path))

    async def main() -> tuple[list[bytes], list[str], int]:
        server = Server()
        url = await server.start(server_context)
        proxy, tunnels = await _connect_proxy()
        proxy_url = f"http://127.0.0.1:{proxy.sockets[0].getsockname()[1]}"
        transport = netbackend.install(
            httpx.AsyncHTTPTransport(verify=trusting, proxy=proxy_url, retries=0)
        )
        async with httpx.AsyncClient(transport=transport, timeout=5, trust_env=False) as http:
            bodies = [(await http.get(f"{url}/small")).content for _ in range(3)]
            bodies.append((await http.post(f"{url}/length", content=BIG)).content)
        proxy.close()
        await server.stop()
        return bodies, tunnels, server.connections

    bodies, tunnels, connections = run(main())
    assert bodies == [b"ok", b"ok", b"ok", str(len(BIG)).encode()]
    assert len(tunnels) == 1 and connections == 1  # one tunnel, kept alive, TLS inside


def test_the_outbound_transport_uses_it_directly_and_through_a_proxy() -> None:
    direct = base_settings()
    proxied = base_settings()
    proxied["server"]["outbound_proxy"] = "http://proxy.acme.test:3128"
    for data, pool_type in (
        (direct, httpcore.AsyncConnectionPool),
        (proxied, httpcore.AsyncHTTPProxy),
    ):
        transport: Any = outbound_transport(parse_settings(data))
        pool = transport._transport._pool
        assert type(pool) is pool_type
        assert isinstance(pool._network_backend, netbackend.AsyncioBackend)


def test_an_httpx_without_the_expected_pool_fails_loudly() -> None:
    transport = httpx.AsyncHTTPTransport()
    del transport._pool
    with pytest.raises(RuntimeError, match="httpcore pool"):
        netbackend.install(transport)
