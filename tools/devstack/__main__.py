"""`make run`: the whole gateway on this machine, configured by the environment (docs/configuration.md).

Against the embedded Cakemail API sandbox by default; with CAKEMAIL_API_URL set, against that API (no sandbox).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from devstack.banner import render_banner
from devstack.certs import ensure_dev_certificate
from devstack.stack import Stack, StackConfigError, StackPorts


def main() -> int:
    try:
        ports = StackPorts.from_environment(os.environ)
    except StackConfigError as exc:
        print(f"make run: {exc}", file=sys.stderr, flush=True)
        return 2
    certificate = ensure_dev_certificate(Path(".dev/certs"))
    stack = Stack(ports, certificate, settings=os.environ)
    stop = threading.Event()

    def request_stop(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        stack.start()
    except RuntimeError as exc:
        # The service's own log lines (above, on this terminal) say why, e.g. which port is taken.
        print(f"make run: {exc}", file=sys.stderr, flush=True)
        return 1
    print(render_banner(stack), flush=True)
    while not stop.is_set():
        if any(s.process is not None and s.process.poll() is not None for s in stack.services):
            print("a service exited; stopping the stack", file=sys.stderr, flush=True)
            break
        stop.wait(0.5)
    codes = stack.stop()
    return 0 if all(code in (0, None, -signal.SIGTERM) for code in codes.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
