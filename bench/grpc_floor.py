"""`python -m bench.grpc_floor`: what the edge -> forwarder hop costs by itself, the floor under both services' CPU
per message. A grpc.aio server that answers SubmitSmallMessage at once (no API call, no logic) in a process of its
own, and a grpc.aio client in another sending the bench's small message as the edge frames it, 20 calls in flight
(the persistent shape's connections), both on uvloop like the services. Prints CPU ms per call for each side,
beside an HTTP/1.1 round trip of the same shape's API body over aiohttp to a bare uvicorn app, the forwarder's
other hop. BENCH_SECONDS (8) per measurement; BENCH_RATE (calls/s, default 800: the stack's rate in the persistent
shape on a quiet machine) paces the callers, because CPU per call falls as the rate rises (more events per wake-up),
0 for as fast as they go.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

import aiohttp
import grpc
import uvloop

from bench.harness import cpu_seconds
from bench.shapes import PASSWORD, SENDER, USERNAME, small
from cakemail.gateway.v1 import forwarder_pb2 as pb
from cakemail.gateway.v1 import forwarder_pb2_grpc as pb_grpc
from devstack.stack import free_port
from gateway_mime.frames import SmtpCredentials, SmtpEnvelope, submission_frames
from gateway_mime.submission import read_submission

SECONDS = float(os.environ.get("BENCH_SECONDS", "8"))
RATE = float(os.environ.get("BENCH_RATE", "800"))
IN_FLIGHT = 20


_ACCEPTED = pb.SubmitSmallMessageResponse(result=pb.SUBMIT_RESULT_ACCEPTED, message_ids=["id"])


async def _instant(request: pb.SubmitSmallMessageRequest, context: grpc.aio.ServicerContext) -> object:
    return _ACCEPTED


# ForwarderService's SubmitSmallMessage, answered at once: the proto's method, (de)serialization included.
_INSTANT = grpc.method_handlers_generic_handler(
    "cakemail.gateway.v1.ForwarderService",
    {
        "SubmitSmallMessage": grpc.unary_unary_rpc_method_handler(
            _instant,
            request_deserializer=pb.SubmitSmallMessageRequest.FromString,
            response_serializer=pb.SubmitSmallMessageResponse.SerializeToString,
        )
    },
)


async def _echo_unary(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    return b"\x08\x01\x12\x02id"  # a SubmitSmallMessageResponse: accepted, one message id


async def _echo_stream(requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
    async for _ in requests:
        yield b"\x08\x01\x12\x02id"


# The same exchange without the proto's method: bytes in, bytes out, as one call per message or as one long-lived
# stream per caller carrying a message and its answer per turn (what a multiplexed edge -> forwarder API would cost).
_ECHO = grpc.method_handlers_generic_handler(
    "floor.Echo",
    {
        "Unary": grpc.unary_unary_rpc_method_handler(_echo_unary),
        "Stream": grpc.stream_stream_rpc_method_handler(_echo_stream),
    },
)


def _serve_grpc(port: int) -> None:
    async def serve() -> None:
        server = grpc.aio.server()
        server.add_generic_rpc_handlers((_INSTANT, _ECHO))
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        await server.wait_for_termination()

    uvloop.run(serve())


def _serve_http(port: int) -> None:
    import uvicorn

    async def app(scope: dict, receive: Callable, send: Callable) -> None:  # type: ignore[type-arg]
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        body = b'{"id":"x","status":"queued"}'
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 201, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", loop="uvloop", lifespan="off")


def _small_request() -> pb.SubmitSmallMessageRequest:
    raw = small().message()
    parsed, identity = read_submission(raw, SENDER, max_attachment_bytes=None, message_id_domain="bench")
    envelope = SmtpEnvelope(SENDER, ("sink0@example.net",))
    (frame,) = submission_frames(parsed, envelope, SmtpCredentials(USERNAME, PASSWORD), message_identity=identity)
    return pb.SubmitSmallMessageRequest(start=frame.start)


async def _drive(call: Callable[[], Awaitable[None]]) -> tuple[int, float]:
    """Calls made and this process's CPU seconds while IN_FLIGHT callers repeat `call` for SECONDS."""
    for _ in range(50):
        await call()
    done = 0
    stop = time.monotonic() + SECONDS
    next_slot = time.monotonic()

    async def caller() -> None:
        nonlocal done, next_slot
        while time.monotonic() < stop:
            if RATE > 0:
                slot, next_slot = next_slot, max(next_slot, time.monotonic() - 1) + 1 / RATE
                await asyncio.sleep(max(0.0, slot - time.monotonic()))
            await call()
            done += 1

    started = time.process_time()
    await asyncio.gather(*(caller() for _ in range(IN_FLIGHT)))
    return done, time.process_time() - started


def _wait_for(port: int) -> None:
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {port}")


def _measure(target: Callable[[int], None], client: Callable[[int], Coroutine[Any, Any, tuple[int, float]]]) -> str:
    port = free_port()
    server = multiprocessing.get_context("spawn").Process(target=target, args=(port,), daemon=True)
    server.start()
    try:
        _wait_for(port)
        before = cpu_seconds(server.pid or 0)
        calls, client_cpu = uvloop.run(client(port))
        server_cpu = cpu_seconds(server.pid or 0) - before
    finally:
        server.terminate()
        server.join()
    return (
        f"{calls / SECONDS:6.0f} calls/s, CPU ms per call: client {1000 * client_cpu / calls:.3f}, "
        f"server {1000 * server_cpu / calls:.3f}"
    )


async def _grpc_client(port: int) -> tuple[int, float]:
    request = _small_request()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = pb_grpc.ForwarderServiceStub(channel)

        async def call() -> None:
            await stub.SubmitSmallMessage(request, timeout=30)

        return await _drive(call)


async def _grpc_bytes_client(port: int) -> tuple[int, float]:
    request = _small_request().SerializeToString()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        unary = channel.unary_unary("/floor.Echo/Unary")

        async def call() -> None:
            await unary(request, timeout=30)

        return await _drive(call)


async def _grpc_stream_client(port: int) -> tuple[int, float]:
    request = _small_request().SerializeToString()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        open_stream = channel.stream_stream("/floor.Echo/Stream")
        idle: list[grpc.aio.StreamStreamCall] = []

        async def call() -> None:
            stream = idle.pop() if idle else open_stream()
            await stream.write(request)
            await stream.read()
            idle.append(stream)

        result = await _drive(call)
        for stream in idle:
            await stream.done_writing()
        return result


async def _http_client(port: int) -> tuple[int, float]:
    body = b'{"email":"sink0@example.net","sender":{"email":"bench@example.com"},"content":{"subject":"s","text":"t"}}'
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200, limit_per_host=0)) as session:
        url = f"http://127.0.0.1:{port}/v2/emails"
        headers = {"Authorization": "Bearer x", "Content-Type": "application/json"}

        async def call() -> None:
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()

        return await _drive(call)


def main() -> None:
    pace = f"paced at {RATE:.0f} calls/s" if RATE > 0 else "unpaced"
    print(f"{IN_FLIGHT} callers, {pace}, {SECONDS:.0f} s each, load average {os.getloadavg()[0]:.1f}")
    print(f"grpc.aio unary SubmitSmallMessage, instant answer: {_measure(_serve_grpc, _grpc_client)}")
    print(f"grpc.aio unary, bytes in and out:                  {_measure(_serve_grpc, _grpc_bytes_client)}")
    print(f"grpc.aio stream per caller, a message per turn:    {_measure(_serve_grpc, _grpc_stream_client)}")
    print(f"aiohttp POST to a bare uvicorn ASGI app:           {_measure(_serve_http, _http_client)}")


if __name__ == "__main__":
    main()
