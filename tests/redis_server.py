"""A real redis-server (Debian's package, installed by `make test`) on a free loopback port, for tests.

No persistence, its own temporary directory, stopped at the end. Registered as the session fixtures `redis_server`
and `redis_url` in tests/conftest.py; tests that need a server of their own (to stop or pause it) start a
RedisServer directly.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

REDIS_SERVER_CANDIDATES = ("/usr/bin/redis-server", "/usr/local/bin/redis-server")
START_TIMEOUT_SECONDS = 10.0


def find_redis_server() -> str:
    found = shutil.which("redis-server") or next((p for p in REDIS_SERVER_CANDIDATES if os.access(p, os.X_OK)), None)
    if found is None:
        raise RuntimeError("redis-server is not installed: `make servers` (or apt-get install redis-server)")
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def ping(port: int, timeout: float = 0.5) -> bool:
    """True when a Redis answers PING on the port (a raw RESP exchange: no client library involved)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as connection:
            connection.sendall(b"PING\r\n")
            return connection.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, port: int | None = None) -> RedisServer:
        """Starts on the port (a restart), or on a free one: another process may take it between probe and bind,
        so a few tries."""
        executable = find_redis_server()
        self.directory.mkdir(parents=True, exist_ok=True)
        for _attempt in range(3):
            self.port = port or free_port()
            log = (self.directory / f"redis-{self.port}.log").open("wb")
            # Loopback only, no persistence (no RDB snapshots, no AOF): a throwaway server.
            throwaway = ("--save", "", "--appendonly", "no", "--dir", str(self.directory))
            self.process = subprocess.Popen(
                [executable, "--port", str(self.port), "--bind", "127.0.0.1", "--daemonize", "no", *throwaway],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.directory,
            )
            log.close()
            deadline = time.monotonic() + START_TIMEOUT_SECONDS
            while time.monotonic() < deadline and self.process.poll() is None:
                if ping(self.port):
                    return self
                time.sleep(0.02)
            self.stop()
        raise RuntimeError(f"redis-server did not answer PING; logs in {self.directory}")

    def pause(self) -> None:
        """SIGSTOP: the port still accepts connections but nothing answers (a hung store, not a dead one)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGCONT)
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None
