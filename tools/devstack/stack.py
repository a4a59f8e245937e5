"""Starts sandbox, forwarder and edge as real processes on loopback, waits until each is ready, stops them.

Used by `make run` and by the end-to-end tests, so the tests exercise exactly what a developer runs.

Each service's environment is layered, later layers winning:
1. the inherited environment (PATH, the venv, anything else);
2. devstack's local defaults (listen on `host`, greet as `localhost`, the dev certificate, the services wired to
   each other's ports);
3. `settings`: the user's settings (`make run` passes its whole environment), so `SMTP_HOSTNAME=... make run`
   is honoured. `CAKEMAIL_API_URL` here means a real API: no sandbox is started;
4. explicit values: the ports of `StackPorts` and `extra_env`, so tests on ephemeral ports always get theirs.
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
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from devstack.certs import DevCertificate


class StackConfigError(ValueError):
    """A setting `make run` cannot honour as given; the message says what to set instead."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def connect_host(listen_host: str) -> str:
    """Where a local client reaches a server listening on `listen_host` (a wildcard means loopback)."""
    if listen_host in ("", "0.0.0.0"):  # noqa: S104 - a listen address, mapped to loopback here
        return "127.0.0.1"
    if listen_host == "::":
        return "::1"
    return listen_host


def host_port(host: str, port: int) -> str:
    """`host:port` with an IPv6 literal in brackets, as URLs and gRPC targets want it."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


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
        """Six distinct free loopback ports. The probes are held open together while the kernel picks, so no two are
        the same: one after the other, a port just closed can come back (about one stack in 700 got a duplicate, and
        its edge then failed to start with "address already in use")."""
        with contextlib.ExitStack() as held:
            probes = [held.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) for _ in range(6)]
            for probe in probes:
                probe.bind(("127.0.0.1", 0))
            return cls(*(int(probe.getsockname()[1]) for probe in probes))

    @classmethod
    def from_environment(cls, env: Mapping[str, str]) -> StackPorts:
        """`make run`'s ports: each service's own variable where the user set it, the local defaults elsewhere.

        HTTP_PORT would name two ports here (the edge's and the forwarder's, on one host), so devstack reads
        EDGE_HTTP_PORT and FORWARDER_HTTP_PORT instead and refuses a bare HTTP_PORT rather than ignore it.
        """
        if env.get("HTTP_PORT", "").strip():
            raise StackConfigError(
                "HTTP_PORT is set, but under `make run` the edge and the forwarder each serve HTTP on this host: "
                "set EDGE_HTTP_PORT (default 8080) and/or FORWARDER_HTTP_PORT (default 8081) instead"
            )
        defaults = cls()

        def port(name: str, default: int) -> int:
            raw = env.get(name, "").strip()
            if not raw:
                return default
            try:
                value = int(raw)
            except ValueError:
                raise StackConfigError(f"{name} must be a port number, not {raw!r}") from None
            if not 0 < value < 65536:
                raise StackConfigError(f"{name} must be a port number between 1 and 65535, not {value}")
            return value

        return cls(
            smtp_starttls=port("SMTP_STARTTLS_PORT", defaults.smtp_starttls),
            smtp_implicit_tls=port("SMTP_TLS_PORT", defaults.smtp_implicit_tls),
            edge_http=port("EDGE_HTTP_PORT", defaults.edge_http),
            forwarder_grpc=port("GRPC_PORT", defaults.forwarder_grpc),
            forwarder_http=port("FORWARDER_HTTP_PORT", defaults.forwarder_http),
            sandbox_http=port("SANDBOX_PORT", defaults.sandbox_http),
        )


@dataclass
class ServiceProcess:
    name: str
    module: str
    env: dict[str, str]
    ready_url: str
    log_path: Path | None
    process: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def environment(self) -> dict[str, str]:
        """Exactly what the process is started with."""
        return {**os.environ, **self.env}

    def start(self) -> None:
        self._log = self.log_path.open("ab") if self.log_path else None
        self.process = subprocess.Popen(  # noqa: S603 - our own modules, fixed arguments
            [sys.executable, "-m", self.module],
            env=self.environment,
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
            # A refused connection costs microseconds: a short interval makes a stack ready ~50 ms sooner per
            # process (the test suite starts dozens of stacks).
            time.sleep(0.02)
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
        settings: Mapping[str, str] | None = None,
    ) -> None:
        self.ports = ports
        self.certificate = certificate
        self.host = host
        # A blank CAKEMAIL_API_URL means none: the sandbox, as when it is unset.
        user = {k: v for k, v in (settings or {}).items() if k != "CAKEMAIL_API_URL" or v.strip()}
        extra = extra_env or {}
        common = {"PYTHONUNBUFFERED": "1"}

        def log_path(name: str) -> Path | None:
            return log_dir / f"{name}.log" if log_dir else None

        def layered(defaults: dict[str, str], explicit: dict[str, str]) -> dict[str, str]:
            return {**defaults, **user, **common, **explicit}

        self._sandbox: ServiceProcess | None = None
        self._sandbox_url: str | None = None
        api_url = user.get("CAKEMAIL_API_URL", "").strip()
        if not api_url:
            sandbox_env = layered(
                {"SANDBOX_HOST": host}, {"SANDBOX_PORT": str(ports.sandbox_http), **extra.get("sandbox", {})}
            )
            api_url = self._sandbox_url = (
                f"http://{host_port(connect_host(sandbox_env['SANDBOX_HOST']), ports.sandbox_http)}"
            )
            self._sandbox = ServiceProcess(
                "cakemail-sandbox",
                "cakemail_sandbox",
                sandbox_env,
                f"{api_url}/v1/health",
                log_path("cakemail-sandbox"),
            )
        forwarder_env = layered(
            {"GRPC_HOST": host, "HTTP_HOST": host, "CAKEMAIL_API_URL": api_url},
            {
                "GRPC_PORT": str(ports.forwarder_grpc),
                "HTTP_PORT": str(ports.forwarder_http),
                **extra.get("forwarder", {}),
            },
        )
        #: Base URLs of the ops HTTP servers (health, metrics), as a local client reaches them.
        self.forwarder_http_url = f"http://{host_port(connect_host(forwarder_env['HTTP_HOST']), ports.forwarder_http)}"
        self.forwarder = ServiceProcess(
            "forwarder", "forwarder", forwarder_env, f"{self.forwarder_http_url}/health/live", log_path("forwarder")
        )
        edge_env = layered(
            {
                "SMTP_HOST": host,
                "HTTP_HOST": host,
                # The dev certificate's name; a real deployment sets the name clients connect to.
                "SMTP_HOSTNAME": "localhost",
                "FORWARDER_ADDRESS": host_port(connect_host(forwarder_env["GRPC_HOST"]), ports.forwarder_grpc),
                "TLS_CERT_FILE": str(certificate.cert_file),
                "TLS_KEY_FILE": str(certificate.key_file),
            },
            {
                "SMTP_STARTTLS_PORT": str(ports.smtp_starttls),
                "SMTP_TLS_PORT": str(ports.smtp_implicit_tls),
                "HTTP_PORT": str(ports.edge_http),
                **extra.get("edge", {}),
            },
        )
        self.edge_http_url = f"http://{host_port(connect_host(edge_env['HTTP_HOST']), ports.edge_http)}"
        self.edge = ServiceProcess(
            "smtp-edge", "smtp_edge", edge_env, f"{self.edge_http_url}/health/ready", log_path("smtp-edge")
        )

    @property
    def has_sandbox(self) -> bool:
        return self._sandbox is not None

    @property
    def sandbox(self) -> ServiceProcess:
        if self._sandbox is None:
            raise RuntimeError(f"this stack calls the Cakemail API at {self.api_url}: it has no sandbox")
        return self._sandbox

    @property
    def sandbox_url(self) -> str:
        if self._sandbox_url is None:
            raise RuntimeError(f"this stack calls the Cakemail API at {self.api_url}: it has no sandbox")
        return self._sandbox_url

    @property
    def api_url(self) -> str:
        """The Cakemail API the forwarder calls: the sandbox's, or the user's CAKEMAIL_API_URL."""
        return self.forwarder.env["CAKEMAIL_API_URL"]

    @property
    def smtp_host(self) -> str:
        """Where a local client reaches the edge's SMTP listeners."""
        return connect_host(self.edge.env["SMTP_HOST"])

    @property
    def services(self) -> tuple[ServiceProcess, ...]:
        """The processes of this stack, back to front (the order they start in)."""
        return (*((self._sandbox,) if self._sandbox else ()), self.forwarder, self.edge)

    def start(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        *backends, edge = self.services
        try:
            # The backends start side by side; the edge only once they are ready, so that SMTP listening means the
            # whole stack is: a client that connects at once must not hear a 454 from a forwarder still starting.
            for service in backends:
                service.start()
            for service in backends:
                service.wait_ready(deadline)
            edge.start()
            edge.wait_ready(deadline)
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
