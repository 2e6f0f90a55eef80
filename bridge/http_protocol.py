"""uvicorn's httptools protocol for ``serve``, each answer's head and body in one write.

uvicorn sends an answer's status line and headers the moment the app starts it, and
its body in a second write: two sends per answer, and often two wake-ups of whoever
reads it (the browser, the proxy in front, the load generator on this machine).
:class:`OneWriteProtocol` gives uvicorn a transport that holds a write until the next
one, normally the body sent in the same event-loop step, and sends both together.
Whatever is still held when that step ends leaves then, so the head of a streamed
answer or a lone chunk waits one loop iteration at most. Large writes are never held,
so flow control sees the same buffer sizes as before. HTTP itself stays uvicorn's.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

#: A write at least this large goes straight out (after anything held).
HOLD_LIMIT = 64 * 1024


class OneWriteTransport(asyncio.Transport):
    """A connection's transport that joins each write with the one after it."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        held = self._held
        if held is None:
            if not data:
                return
            if len(data) >= HOLD_LIMIT:
                self._transport.write(data)
                return
            self._held = bytes(data)
            self._loop.call_soon(self._release)
            return
        self._held = None
        if len(data) >= HOLD_LIMIT:
            self._transport.writelines((held, data))
        else:
            self._transport.write(held + data)

    def _release(self) -> None:
        """Send what is held, if anything: at the end of the step, or before another call."""
        held, self._held = self._held, None
        if held is not None and not self._transport.is_closing():
            self._transport.write(held)

    def writelines(self, list_of_data: Any) -> None:
        self._release()
        self._transport.writelines(list_of_data)

    def write_eof(self) -> None:
        self._release()
        self._transport.write_eof()

    def can_write_eof(self) -> bool:
        return self._transport.can_write_eof()

    def close(self) -> None:
        self._release()
        self._transport.close()

    def abort(self) -> None:
        self._held = None
        self._transport.abort()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._transport.get_protocol()

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def is_reading(self) -> bool:
        return self._transport.is_reading()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._transport.set_write_buffer_limits(high, low)

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + len(self._held or b"")

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._transport.get_write_buffer_limits()


class OneWriteProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol on a :class:`OneWriteTransport`."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(OneWriteTransport(transport, self.loop))


__all__ = ["HOLD_LIMIT", "OneWriteProtocol", "OneWriteTransport"]
