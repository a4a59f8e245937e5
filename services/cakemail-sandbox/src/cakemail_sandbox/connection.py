"""Raw ASGI moves the fault middleware needs: read a body away, wait for the client to leave, cut the TCP connection.

ASGI has no "close the socket without answering": the transport is reached through uvicorn's receive callable
(a bound method of its request cycle, for both the h11 and the httptools protocol). Should that ever change,
`abort_connection` falls back to a response cut off after its headers, still a transport error for any client.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, cast

from starlette.types import Message, Receive, Send

# How long to wait for uvicorn to notice a connection we aborted ourselves (one loop iteration in practice).
_ABORT_NOTICE_SECONDS = 5.0


class ConnectionDropped(Exception):
    """Raised only by the fallback path, to make uvicorn close a connection whose response has started."""


async def drain_body(receive: Receive) -> bool:
    """Reads and discards the request body; False when the client disconnected first."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return False
        if not message.get("more_body", False):
            return True


async def wait_for_disconnect(receive: Receive) -> None:
    """Returns when the client closes the connection (call it once the body has been read)."""
    while (await receive())["type"] != "http.disconnect":
        pass


def _transport(receive: Receive) -> asyncio.Transport | None:
    owner = getattr(receive, "__self__", None)
    transport = getattr(owner, "transport", None)
    # By behaviour, not by class: uvloop's transports implement asyncio.Transport without subclassing it.
    if isinstance(transport, asyncio.Transport) or callable(getattr(transport, "abort", None)):
        return cast(asyncio.Transport, transport)
    return None


async def abort_connection(receive: Receive, send: Send) -> None:
    """Closes the TCP connection without an HTTP response (the body must have been read already)."""
    transport = _transport(receive)
    if transport is None:
        await send({"type": "http.response.start", "status": 500, "headers": [(b"content-length", b"1")]})
        raise ConnectionDropped("connection dropped by fault injection")
    transport.abort()
    # Let uvicorn see the connection go, so it does not try to answer on our behalf.
    async with asyncio.timeout(_ABORT_NOTICE_SECONDS):
        await wait_for_disconnect(receive)


async def send_json(send: Send, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
    payload = json.dumps(body).encode()
    raw_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    raw_headers += [
        (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in (headers or {}).items()
    ]
    start: Message = {"type": "http.response.start", "status": status, "headers": raw_headers}
    await send(start)
    await send({"type": "http.response.body", "body": payload, "more_body": False})
