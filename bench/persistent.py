"""`python -m bench.persistent`: the persistent shape alone (20 STARTTLS + AUTH connections, small messages) against
the gateway, beside the bare aiosmtpd server measured by the same client in the same run: the quick A/B behind the
figures in docs/performance.md ("What changed"). Prints one line: msg/s, errors, CPU ms per message per service and
edge + forwarder as a multiple of the bare server.

BENCH_SECONDS (12) sets the gateway's measuring time (the bare server gets half); BENCH_ENV ("KEY=VALUE,...") is
passed to the edge and the forwarder, e.g. EVENT_LOOP=asyncio or LOG_LEVEL=INFO; PY_SPY_DIR, when set, records a
py-spy profile of each service there (raw collapsed stacks, 200 Hz; py-spy is not a dependency: install it
yourself), with PY_SPY_NATIVE=1 native frames too (C extensions, the interpreter's garbage collector).
BENCH_SHAPE=new-connection opens a connection per message instead (TLS handshake, AUTH, one message, QUIT). Run it
twice per side, alternating sides: the machine's load moves between runs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import uvloop

from bench.__main__ import CONNECTIONS, bare_server, measure, per_message, persistent
from bench.harness import running_stack, service_pids
from bench.shapes import small

SECONDS = float(os.environ.get("BENCH_SECONDS", "12"))
ENV = dict(pair.split("=", 1) for pair in os.environ.get("BENCH_ENV", "").split(",") if pair)
PY_SPY_DIR = os.environ.get("PY_SPY_DIR", "")
PY_SPY_NATIVE = os.environ.get("PY_SPY_NATIVE", "") == "1"
# "new-connection": a TLS handshake and AUTH per message instead (make bench's second shape), for per-connection costs.
WORKER = {"persistent": persistent, "new-connection": per_message}[os.environ.get("BENCH_SHAPE", "persistent")]


def py_spy(pid: int, out: str, seconds: float = SECONDS) -> subprocess.Popen[bytes]:
    spy = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy")
    command = [spy, "record", "-r", "200", "-f", "raw", "-d", str(int(seconds)), "-o", out, "--pid", str(pid)]
    if PY_SPY_NATIVE:
        command.append("--native")
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main() -> int:
    with running_stack({"edge": dict(ENV), "forwarder": dict(ENV)}) as (stack, tls):
        pids = service_pids(stack)
        with bare_server(stack) as (bare, bare_port):

            async def run() -> str:
                one, edge = small(), stack.ports.smtp_starttls
                await measure("warm-up", pids, [WORKER(edge, tls, one) for _ in range(CONNECTIONS)], seconds=3)
                workers = [WORKER(bare_port, tls, one) for _ in range(CONNECTIONS)]
                base = await measure("bare", {"bare": bare.pid}, workers, seconds=SECONDS / 2)
                spies = [
                    py_spy(pids[name], os.path.join(PY_SPY_DIR, f"{name}.txt"))
                    for name in (("smtp-edge", "forwarder") if PY_SPY_DIR else ())
                ]
                gateway = await measure("gateway", pids, [WORKER(edge, tls, one) for _ in range(CONNECTIONS)])
                for spy in spies:
                    spy.wait()
                bare_ms, cpu = base.cpu_ms()["bare"], gateway.cpu_ms()
                both = cpu["smtp-edge"] + cpu["forwarder"]
                services = " ".join(f"{name} {ms:.2f}" for name, ms in sorted(cpu.items()))
                return (
                    f"{ENV or 'defaults'}: bare {base.rate:.0f} msg/s {bare_ms:.2f} ms | gateway {gateway.rate:.0f} "
                    f"msg/s, errors {dict(gateway.errors) or 'none'}, CPU ms/msg {services} | edge+forwarder "
                    f"{both:.2f} = {both / bare_ms:.1f}x bare | load average {os.getloadavg()[0]:.1f}"
                )

            print(uvloop.run(run()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
