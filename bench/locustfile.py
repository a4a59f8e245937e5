"""Locust load for the gateway: SMTP users that connect, STARTTLS, AUTH and send realistic messages, each
transaction reported as a Locust request (type SMTP, named by shape), so Locust's tables and charts read as they do
for HTTP.

Headless, from the repository root against `make run` (or any edge; docs/performance.md):

    .venv/bin/python -m locust -f bench/locustfile.py --headless -u 20 -r 5 -t 60s --host smtp://127.0.0.1:2587

Settings from the environment: SMTP_USERNAME / SMTP_PASSWORD (the sandbox's demo account by default) and SMTP_CA_FILE
(the CA that signed the edge's certificate; `make run` prints where it is). `python -m` (not the `locust` script)
puts the repository root on sys.path, which the `bench.shapes` import needs.
"""

from __future__ import annotations

import os
import smtplib
import ssl
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from locust import User, between, task

from bench.shapes import PASSWORD, SENDER, USERNAME, Shape, attachment, html, small

SHAPES = {"small": small(), "html": html(), "10 recipients": small(10), "1 MB attachment": attachment()}


class SmtpUser(User):
    """One SMTP client keeping its connection open between messages, as an application's mail library does."""

    wait_time = between(0.05, 0.2)
    host = "smtp://127.0.0.1:2587"

    def on_start(self) -> None:
        address = urlsplit(self.host or "")
        self.address = (address.hostname or "127.0.0.1", address.port or 587)
        ca_file = os.environ.get("SMTP_CA_FILE")
        self.tls = ssl.create_default_context(cafile=ca_file)
        self.username = os.environ.get("SMTP_USERNAME", USERNAME)
        self.password = os.environ.get("SMTP_PASSWORD", PASSWORD)
        self.client: smtplib.SMTP | None = None

    def on_stop(self) -> None:
        self._drop()

    def _connect(self) -> smtplib.SMTP:
        client = smtplib.SMTP(*self.address, timeout=60)
        client.starttls(context=self.tls)
        client.login(self.username, self.password)
        return client

    def _drop(self) -> None:
        if self.client is not None:
            try:
                self.client.quit()
            except (smtplib.SMTPException, OSError):
                self.client.close()
            self.client = None

    def _transaction(self, name: str, size: int, action: Callable[[], None]) -> None:
        """Times `action` and reports it; any SMTP error or reply is a failure and the connection starts over."""
        started = time.perf_counter()
        failure: Exception | None = None
        try:
            action()
        except (smtplib.SMTPException, OSError) as error:
            failure = error
            self._drop()
        self.environment.events.request.fire(
            request_type="SMTP",
            name=name,
            response_time=(time.perf_counter() - started) * 1000,
            response_length=size,
            exception=failure,
            context={},
        )

    def _send(self, shape: Shape) -> None:
        message = shape.message()

        def send() -> None:
            if self.client is None:
                self.client = self._connect()
            refused = self.client.sendmail(SENDER, list(shape.recipients), message)
            if refused:
                raise smtplib.SMTPRecipientsRefused(refused)

        self._transaction(shape.name, len(message), send)

    @task(70)
    def small_message(self) -> None:
        self._send(SHAPES["small"])

    @task(15)
    def html_message(self) -> None:
        self._send(SHAPES["html"])

    @task(5)
    def many_recipients(self) -> None:
        self._send(SHAPES["10 recipients"])

    @task(2)
    def attachment_message(self) -> None:
        self._send(SHAPES["1 MB attachment"])

    @task(8)
    def new_connection(self) -> None:
        """A client that connects for one message (cron jobs, simple scripts): the TLS handshake is the cost."""
        message = SHAPES["small"].message()

        def send() -> None:
            client = self._connect()
            try:
                client.sendmail(SENDER, list(SHAPES["small"].recipients), message)
            finally:
                client.quit()

        self._transaction("small, new connection", len(message), send)
