"""`python -m bench.forwarder_memory`: the forwarder's peak memory per in-flight large message, the forwarder alone.

Large messages (bench/burst.py's: two PDF attachments, ~20 MiB on the wire) go straight to the forwarder's
SubmitMessage over gRPC, framed as the edge frames them (gateway_mime), 1 then FWD_MEM_IN_FLIGHT (4) at once, while
the sandbox holds each POST /v2/emails FWD_MEM_HOLD_MS (1500) before reading it: every message is then in the
forwarder at the same moment, assembled and being sent. The forwarder's RSS is sampled every 10 ms; printed: its
peak above idle, per message in flight, as a multiple of the message's size on the wire (the target: <= 1.2x;
docs/performance.md, "Against the targets"), and the slope between the two runs (per extra message in flight,
without what the first message pays once: pools, buffers, code). BENCH_ENV ("KEY=VALUE,...") goes to the forwarder.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

import grpc

from bench.__main__ import set_api_latency
from bench.burst import large_message
from bench.harness import rss_mib, running_stack, service_pids
from bench.shapes import PASSWORD, SENDER, USERNAME
from cakemail.gateway.v1 import forwarder_pb2 as pb
from cakemail.gateway.v1 import forwarder_pb2_grpc
from gateway_mime.frames import SmtpCredentials, SmtpEnvelope, submission_frames
from gateway_mime.submission import read_submission

IN_FLIGHT = int(os.environ.get("FWD_MEM_IN_FLIGHT", "4"))
HOLD_MS = int(os.environ.get("FWD_MEM_HOLD_MS", "1500"))
ENV = dict(pair.split("=", 1) for pair in os.environ.get("BENCH_ENV", "").split(",") if pair)


async def _peak_during(pid: int, sends: list[asyncio.Future[object]]) -> float:
    peak = rss_mib(pid)[0]
    pending = asyncio.gather(*sends)
    while not pending.done():
        peak = max(peak, rss_mib(pid)[0])
        await asyncio.sleep(0.01)
    for reply in pending.result():
        assert reply.result == pb.SUBMIT_RESULT_ACCEPTED, reply  # type: ignore[attr-defined]
    return peak


async def run(port: int, pid: int, raw: bytes) -> None:
    parsed, _ = read_submission(raw, SENDER, max_attachment_bytes=None, message_id_domain="bench")
    envelope = SmtpEnvelope(mail_from=SENDER, rcpt_tos=("sink@example.net",))
    credentials = SmtpCredentials(USERNAME, PASSWORD)
    size = len(raw) / 2**20
    results: dict[int, float] = {}
    async with grpc.aio.insecure_channel(
        f"127.0.0.1:{port}", options=[("grpc.max_send_message_length", 8 * 2**20)]
    ) as channel:
        stub = forwarder_pb2_grpc.ForwarderServiceStub(channel)
        counter = 0
        for count in (1, 1, IN_FLIGHT):  # the first single message warms up (sign-in, senders, pools)
            idle = rss_mib(pid)[0]
            calls = []
            for _ in range(count):
                counter += 1
                frames = submission_frames(
                    parsed, envelope, credentials, message_identity=f"fwd-mem-{time.time()}-{counter}"
                )
                calls.append(asyncio.ensure_future(stub.SubmitMessage(iter(frames), timeout=300)))
            started = time.perf_counter()
            peak = await _peak_during(pid, calls)
            took = time.perf_counter() - started
            results[count] = peak - idle
            each = (peak - idle) / count
            print(
                f"  {count} in flight: forwarder RSS {idle:.0f} -> peak {peak:.0f} MiB, {each:.1f} MiB "
                f"= {each / size:.2f}x the message ({size:.1f} MiB) per message, {took:.1f} s",
                flush=True,
            )
            await asyncio.sleep(1)
    slope = (results[IN_FLIGHT] - results[1]) / (IN_FLIGHT - 1)
    print(f"  per extra message in flight: {slope:.1f} MiB = {slope / size:.2f}x the message", flush=True)


def main() -> int:
    raw = b"Message-ID: <fwd-mem@bench>\r\n" + large_message()
    with running_stack({"forwarder": dict(ENV)}) as (stack, _tls):
        pid = service_pids(stack)["forwarder"]
        set_api_latency(stack, HOLD_MS)
        try:
            mib = len(raw) / 2**20
            print(f"forwarder memory, {ENV or 'defaults'}, {IN_FLIGHT} x {mib:.1f} MiB, API holds {HOLD_MS} ms:")
            asyncio.run(run(stack.ports.forwarder_grpc, pid, raw))
        finally:
            set_api_latency(stack, 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
