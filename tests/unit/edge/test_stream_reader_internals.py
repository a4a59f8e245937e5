"""smtp/data_reader.read_data relies on two private attributes of asyncio.StreamReader (aiosmtpd's reader): `_buffer`
(a bytearray it puts the bytes pipelined after the end of data back into, in front of what is buffered) and `_limit`
(raised to 256 KiB while DATA is read: the reader pauses its socket at twice its limit, every 2 KiB at aiosmtpd's).
Neither is a public API: these tests fail loudly when a Python upgrade changes either, on both event loops the edge
may run (asyncio's default loop, uvloop)."""

from __future__ import annotations

import asyncio
import ssl
from asyncio import sslproto
from collections.abc import Callable

import pytest
import uvloop

from smtp_edge.smtp.data_reader import read_data
from smtp_edge.smtp.protocol import TlsLayer

LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,
}


def run_on(loop_name: str, check: Callable[[], object]) -> None:
    async def main() -> None:
        result = check()
        if asyncio.iscoroutine(result):
            await result

    with asyncio.Runner(loop_factory=LOOPS[loop_name]) as runner:
        runner.run(main())


@pytest.mark.parametrize("loop_name", sorted(LOOPS))
def test_stream_reader_still_has_the_private_attributes_data_reader_uses(loop_name: str) -> None:
    async def check() -> None:
        reader = asyncio.StreamReader(limit=1024)
        transport = _PausableTransport()
        reader.set_transport(transport)
        assert isinstance(reader._buffer, bytearray), "asyncio.StreamReader._buffer is gone or not a bytearray"
        assert reader._limit == 1024, "asyncio.StreamReader._limit no longer holds the limit"
        reader.feed_data(b"QUIT\r\n")
        reader._buffer[:0] = b"NOOP\r\n"  # what read_data does with bytes pipelined after the end of data
        assert await reader.readline() == b"NOOP\r\n"
        assert await reader.readline() == b"QUIT\r\n"
        reader._limit = 1 << 20
        reader.feed_data(b"x" * 5000)
        assert not transport.paused, "a raised `_limit` no longer raises the threshold at which the reader pauses"
        reader._limit = 1024
        reader.feed_data(b"x")
        assert transport.paused, "StreamReader no longer pauses its transport over twice `_limit` buffered"

    run_on(loop_name, check)


@pytest.mark.parametrize("loop_name", sorted(LOOPS))
def test_read_data_restores_the_limit_and_keeps_what_follows(loop_name: str) -> None:
    async def check() -> None:
        reader = asyncio.StreamReader(limit=1024)
        body = b"line\r\n" * 2000
        reader.feed_data(body + b".\r\nQUIT\r\n")
        outcome = await read_data(reader, size_limit=None)
        assert outcome.problem is None and outcome.content == body
        assert reader._limit == 1024
        assert await reader.readline() == b"QUIT\r\n"

    run_on(loop_name, check)


class _PausableTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.paused = False

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False


@pytest.mark.parametrize("loop_name", sorted(LOOPS))
def test_a_cleared_buffer_lets_the_reader_resume_its_transport(loop_name: str) -> None:
    """GatewaySMTP._start_tls clears `_buffer` (bytes pipelined behind STARTTLS) and calls
    `_maybe_resume_transport()`: a reader holding more than twice its limit paused the socket, and a paused socket
    would never hand the TLS handshake its bytes (docs/security.md, fuzzer defect 5)."""

    async def check() -> None:
        reader = asyncio.StreamReader(limit=1001)
        transport = _PausableTransport()
        reader.set_transport(transport)
        reader.feed_data(b"STARTTLS\r\n" + b"A" * 3000 + b"\r\n")
        assert transport.paused, "StreamReader no longer pauses its transport over a full buffer"
        assert await reader.readuntil(b"\n") == b"STARTTLS\r\n"
        assert transport.paused  # still more than the limit buffered: reading one line does not resume it
        reader._buffer.clear()
        reader._maybe_resume_transport()
        assert not transport.paused, "StreamReader._maybe_resume_transport no longer resumes the transport"

    run_on(loop_name, check)


@pytest.mark.parametrize("loop_name", sorted(LOOPS))
def test_the_tls_layer_reads_into_a_buffer_of_the_configured_size(loop_name: str) -> None:
    """smtp/protocol.TlsLayer sets asyncio's SSLProtocol.max_size before asyncio's __init__ allocates the read
    buffer: get_buffer (the BufferedProtocol call the transport makes before every socket read) must hand out that
    size, or an upgrade made the setting do nothing."""

    async def check() -> None:
        loop = asyncio.get_running_loop()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        layer = TlsLayer(loop, asyncio.Protocol(), context, loop.create_future(), read_buffer_bytes=32 * 1024)
        assert len(layer.get_buffer(-1)) == 32 * 1024
        assert len(layer.get_buffer(1 << 20)) == 32 * 1024
        assert (
            len(sslproto.SSLProtocol(loop, asyncio.Protocol(), context, None, server_side=True).get_buffer(-1))
            == 256 * 1024
        )

    run_on(loop_name, check)
