"""Starts sandbox, forwarder and edge as real processes on loopback, waits until each is ready, stops them.

Used by `make run` and by the end-to-end tests, so the tests exercise exactly what a developer runs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from devstack.certs import DevCertificate


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True, slots=True)
class StackPorts:
    smtp_starttls: int = 2587
    smtp_implicit_tls: int = 2465
    edge_http: int = 8080
    forwarder_grpc: int = 50051
    forwarder_http: int = 8081
    sandbox_http: int = 8090

    @classmethod
    def ephemeral(cls) -> StackPorts:
        return cls(*(free_port() for _ in range(6)))


@dataclass
class ServiceProcess:
    name: str
    module: str
    env: dict[str, str]
    ready_url: str
    log_path: Path | None
    process: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)

    def start(self) -> None:
        self._log = self.log_path.open("ab") if self.log_path else None
        self.process = subprocess.Popen(  # noqa: S603 - our own modules, fixed arguments
            [sys.executable, "-m", self.module],
            env={**os.environ, **self.env},
            stdout=self._log,
            stderr=subprocess.STDOUT if self._log else None,
            start_new_session=False,
        )

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def wait_ready(self, deadline: float) -> None:
        assert self.process is not None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}\n{self.log_tail()}")
            with (
                contextlib.suppress(urllib.error.URLError, OSError),
                urllib.request.urlopen(self.ready_url, timeout=1) as response,  # noqa: S310 - loopback URL
            ):
                if response.status == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready at {self.ready_url} in time\n{self.log_tail()}")

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log:
            self._log.close()
        return self.process.returncode


class Stack:
    def __init__(
        self,
        ports: StackPorts,
        certificate: DevCertificate,
        *,
        log_dir: Path | None = None,
        extra_env: dict[str, dict[str, str]] | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.ports = ports
        self.certificate = certificate
        self.host = host
        extra = extra_env or {}
        common = {"PYTHONUNBUFFERED": "1"}

        def log_path(name: str) -> Path | None:
            return log_dir / f"{name}.log" if log_dir else None

        self.sandbox = ServiceProcess(
            "cakemail-sandbox",
            "cakemail_sandbox",
            {**common, "SANDBOX_HOST": host, "SANDBOX_PORT": str(ports.sandbox_http), **extra.get("sandbox", {})},
            f"http://{host}:{ports.sandbox_http}/v1/health",
            log_path("cakemail-sandbox"),
        )
        self.forwarder = ServiceProcess(
            "forwarder",
            "forwarder",
            {
                **common,
                "GRPC_HOST": host,
                "GRPC_PORT": str(ports.forwarder_grpc),
                "HTTP_HOST": host,
                "HTTP_PORT": str(ports.forwarder_http),
                "CAKEMAIL_API_URL": self.sandbox_url,
                **extra.get("forwarder", {}),
            },
            f"http://{host}:{ports.forwarder_http}/health/live",
            log_path("forwarder"),
        )
        self.edge = ServiceProcess(
            "smtp-edge",
            "smtp_edge",
            {
                **common,
                "SMTP_HOST": host,
                "SMTP_STARTTLS_PORT": str(ports.smtp_starttls),
                "SMTP_TLS_PORT": str(ports.smtp_implicit_tls),
                "SMTP_HOSTNAME": "localhost",
                "HTTP_HOST": host,
                "HTTP_PORT": str(ports.edge_http),
                "FORWARDER_ADDRESS": f"{host}:{ports.forwarder_grpc}",
                "TLS_CERT_FILE": str(certificate.cert_file),
                "TLS_KEY_FILE": str(certificate.key_file),
                **extra.get("edge", {}),
            },
            f"http://{host}:{ports.edge_http}/health/ready",
            log_path("smtp-edge"),
        )

    @property
    def sandbox_url(self) -> str:
        return f"http://{self.host}:{self.ports.sandbox_http}"

    @property
    def services(self) -> tuple[ServiceProcess, ...]:
        return (self.sandbox, self.forwarder, self.edge)

    def start(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        try:
            for service in self.services:
                service.start()
            for service in self.services:
                service.wait_ready(deadline)
        except BaseException:
            self.stop()
            raise

    def __enter__(self) -> Stack:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def stop(self) -> dict[str, int | None]:
        # Front to back, so nothing in flight loses the service behind it first.
        return {service.name: service.stop() for service in reversed(self.services)}
