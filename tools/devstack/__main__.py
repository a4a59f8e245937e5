"""`make run`: the whole gateway on this machine, against the embedded Cakemail API sandbox."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from devstack.certs import ensure_dev_certificate
from devstack.stack import Stack, StackPorts

_BANNER = """
Cakemail SMTP Gateway is running (Ctrl-C stops it).

  SMTP    127.0.0.1:{p.smtp_starttls} (STARTTLS)   127.0.0.1:{p.smtp_implicit_tls} (implicit TLS)
  login   demo@example.com / demo-password
  dev CA  {ca}   (or skip verification: the certificate is self-made)

Send a test message:
  swaks --server 127.0.0.1:{p.smtp_starttls} --tls --auth-user demo@example.com --auth-password demo-password \\
        --from demo@example.com --to someone@example.net
  python -c "import smtplib,ssl; s=smtplib.SMTP('127.0.0.1',{p.smtp_starttls}); \\
s.starttls(context=ssl._create_unverified_context()); s.login('demo@example.com','demo-password'); \\
s.sendmail('demo@example.com',['someone@example.net'],'Subject: hi\\r\\n\\r\\nhello'); s.quit()"

See what the API received:   curl -s http://127.0.0.1:{p.sandbox_http}/sandbox/emails?content=0
Health and metrics:          http://127.0.0.1:{p.edge_http}/health/ready  http://127.0.0.1:{p.edge_http}/metrics
                             http://127.0.0.1:{p.forwarder_http}/health/ready  http://127.0.0.1:{p.forwarder_http}/metrics
"""


def main() -> int:
    certificate = ensure_dev_certificate(Path(".dev/certs"))
    ports = StackPorts()
    stack = Stack(ports, certificate)
    stop = threading.Event()

    def request_stop(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    stack.start()
    print(_BANNER.format(p=ports, ca=certificate.ca_file.resolve()), flush=True)
    while not stop.is_set():
        if any(s.process is not None and s.process.poll() is not None for s in stack.services):
            print("a service exited; stopping the stack", file=sys.stderr, flush=True)
            break
        stop.wait(0.5)
    codes = stack.stop()
    return 0 if all(code in (0, None, -signal.SIGTERM) for code in codes.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
