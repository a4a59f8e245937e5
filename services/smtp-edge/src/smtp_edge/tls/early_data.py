"""Bytes a client sent before TLS was set up on its connection, handed over to the TLS layer."""

from __future__ import annotations

import asyncio


def feed(protocol: asyncio.BufferedProtocol, data: bytes) -> None:
    """Hand bytes to a buffered protocol as if the transport had just received them."""
    view = memoryview(data)
    while view:
        buffer = memoryview(protocol.get_buffer(len(view)))
        count = min(len(buffer), len(view))
        buffer[:count] = view[:count]
        protocol.buffer_updated(count)
        view = view[count:]
