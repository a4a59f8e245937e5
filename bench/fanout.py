"""`python -m bench.fanout`: the fan-out shape alone, for A/B runs: one connection sending 1-recipient messages,
then 100-recipient ones, with the API answering POST /v2/emails 20 ms late (the sandbox's `latency_ms` fault);
the same two against the bare aiosmtpd server (no API behind it: the SMTP dialogue's own cost, 100 RCPTs). Prints
p50 latencies, the 100/1 ratio and CPU ms per message per service.

BENCH_SECONDS (8) per gateway shape (the bare server gets half); BENCH_ENV ("KEY=VALUE,...") goes to the
forwarder, e.g. RECIPIENT_CONCURRENCY=8, BENCH_SANDBOX_ENV to the sandbox, e.g. EVENT_LOOP=asyncio;
BENCH_LATENCY_MS (20) the API's added latency; PY_SPY_DIR, when set, records a py-spy profile of the forwarder and
the sandbox during the 100-recipient shape (as bench.persistent).
"""

from __future__ import annotations

import os
import sys

import uvloop

from bench.__main__ import Run, bare_server, measure, persistent, set_api_latency
from bench.harness import percentile, running_stack, service_pids
from bench.persistent import PY_SPY_DIR, py_spy
from bench.shapes import small

SECONDS = float(os.environ.get("BENCH_SECONDS", "8"))
ENV = dict(pair.split("=", 1) for pair in os.environ.get("BENCH_ENV", "").split(",") if pair)
SANDBOX_ENV = dict(pair.split("=", 1) for pair in os.environ.get("BENCH_SANDBOX_ENV", "").split(",") if pair)
LATENCY_MS = int(os.environ.get("BENCH_LATENCY_MS", "20"))


def _line(label: str, run: Run) -> str:
    cpu = " ".join(f"{name} {ms:.1f}" for name, ms in sorted(run.cpu_ms().items()))
    p50 = percentile(run.latencies, 0.5) * 1000
    errors = dict(run.errors) or "none"
    return f"  {label:28} p50 {p50:7.1f} ms  {len(run.latencies):4} msgs  errors {errors}  CPU ms {cpu}"


def main() -> int:
    with running_stack({"forwarder": dict(ENV), "sandbox": dict(SANDBOX_ENV)}) as (stack, tls):
        pids = service_pids(stack)
        with bare_server(stack) as (bare, bare_port):

            async def run() -> None:
                edge = stack.ports.smtp_starttls
                await measure("warm-up", pids, [persistent(edge, tls, small(100))], seconds=2)
                bare_runs = {
                    n: await measure(
                        f"bare {n}", {"bare": bare.pid}, [persistent(bare_port, tls, small(n))], seconds=SECONDS / 2
                    )
                    for n in (1, 100)
                }
                set_api_latency(stack, LATENCY_MS)
                try:
                    gw = {1: await measure("gateway 1", pids, [persistent(edge, tls, small(1))], seconds=SECONDS)}
                    spies = [
                        py_spy(pids[name], os.path.join(PY_SPY_DIR, f"fanout-{name}.txt"), SECONDS)
                        for name in (("forwarder", "cakemail-sandbox") if PY_SPY_DIR else ())
                    ]
                    gw[100] = await measure("gateway 100", pids, [persistent(edge, tls, small(100))], seconds=SECONDS)
                    for spy in spies:
                        spy.wait()
                finally:
                    set_api_latency(stack, 0)
                sandbox = SANDBOX_ENV or "defaults"
                load = os.getloadavg()[0]
                print(f"{ENV or 'defaults'}, sandbox {sandbox}, API +{LATENCY_MS} ms, load average {load:.1f}")
                for n in (1, 100):
                    print(_line(f"bare, {n} recipient(s)", bare_runs[n]))
                for n in (1, 100):
                    print(_line(f"gateway, {n} recipient(s)", gw[n]))
                one, hundred = (percentile(gw[n].latencies, 0.5) for n in (1, 100))
                print(f"  fan-out: 100 recipients p50 = {hundred / one:.1f}x 1 recipient", flush=True)

            uvloop.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
