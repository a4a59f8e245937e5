"""`python -m devstack` (what `make run` runs) as a real process, with the output it prints read as it comes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from devstack.stack import StackPorts

BANNER_HEADLINE = "Cakemail SMTP Gateway is running"

# Settings a developer's shell might carry that would change what these tests start.
_SCRUBBED = ("HTTP_PORT", "CAKEMAIL_API_URL", "SANDBOX_ACCOUNTS", "SMTP_HOSTNAME", "SMTP_HOST", "TLS_CERT_FILE")


def port_settings(ports: StackPorts) -> dict[str, str]:
    """The environment that puts `make run` on these ports (every one free: other stacks share this machine)."""
    return {
        "SMTP_STARTTLS_PORT": str(ports.smtp_starttls),
        "SMTP_TLS_PORT": str(ports.smtp_implicit_tls),
        "EDGE_HTTP_PORT": str(ports.edge_http),
        "GRPC_PORT": str(ports.forwarder_grpc),
        "FORWARDER_HTTP_PORT": str(ports.forwarder_http),
        "SANDBOX_PORT": str(ports.sandbox_http),
    }


class MakeRun:
    def __init__(self, settings: Mapping[str, str], cwd: Path) -> None:
        env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "devstack"],
            cwd=cwd,
            env={**env, **settings},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._changed:
                self._lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def output(self) -> str:
        with self._changed:
            return "".join(self._lines)

    def wait_for(self, text: str, timeout: float = 60.0) -> str:
        """The output once it contains `text`; fails when the process ends first or the time is up."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while text not in "".join(self._lines):
                if not self._reader.is_alive():
                    raise AssertionError(f"devstack ended ({self.process.poll()}) without {text!r}:\n{self.output}")
                if not self._changed.wait(deadline - time.monotonic()) and time.monotonic() >= deadline:
                    raise AssertionError(f"no {text!r} within {timeout}s:\n{''.join(self._lines)}")
            return "".join(self._lines)

    def wait_exit(self, timeout: float = 60.0) -> int:
        code = self.process.wait(timeout)
        self._reader.join(timeout)
        return code

    def interrupt(self, timeout: float = 60.0) -> int:
        """Ctrl-C, as a developer stops `make run`; returns its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        return self.wait_exit(timeout)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def children(self) -> dict[int, str]:
        """The processes devstack started, by pid: their command lines."""
        found = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            if parent == self.process.pid:
                found[int(entry.name)] = cmdline
        return found


def process_environment(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.decode().split("=", 1) for item in raw.split(b"\0") if b"=" in item)
