"""Real SMTP clients nobody here wrote, on both listeners, with both AUTH mechanisms, end to end.

smtplib, aiosmtplib, swaks (Debian), Nodemailer (npm), PHPMailer (Debian) and Ruby's `mail` gem with its SMTP
delivery (Debian; what ActionMailer uses) each send the same message; the
sandbox must receive the same payload: on the v2 API (the default), one POST /v2/emails per envelope recipient.
docs/compatibility.md is the table of what this proves.
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import smtplib
import ssl
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiosmtplib
import pytest

from devstack.stack import Stack
from tests.conftest import SandboxView
from tests.e2e.v2 import DEMO_SENDER_IDS, v2_header

pytestmark = pytest.mark.e2e

CLIENTS_DIR = Path(__file__).resolve().parent.parent / "clients"
ATTACHMENT = bytes(range(256)) * 8


@dataclass
class Job:
    host: str
    port: int
    implicit_tls: bool
    mechanism: str
    ca_file: str
    username: str = "demo@example.com"
    password: str = "demo-password"
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    mail_from: str = "bounce@example.com"
    from_: tuple[str, str] = ("Ann Sender", "ann@example.com")
    to_addresses: tuple[tuple[str, str], ...] = (("Bob", "bob@example.net"),)
    cc_addresses: tuple[tuple[str, str], ...] = (("", "carol@example.org"),)
    bcc_addresses: tuple[str, ...] = ("dave@example.com",)

    @property
    def subject(self) -> str:
        return f"matrix {self.tag} caf\u00e9"

    @property
    def text(self) -> str:
        return f"plain {self.tag}"

    @property
    def html(self) -> str:
        return f"<p>html {self.tag}</p>"

    @property
    def rcpt_tos(self) -> list[str]:
        return [a for _, a in self.to_addresses] + [a for _, a in self.cc_addresses] + list(self.bcc_addresses)

    def as_json(self) -> str:
        data: dict[str, Any] = asdict(self)
        data.pop("from_")
        data.update(
            {
                "from": list(self.from_),
                "to": [f'"{n}" <{a}>' if n else a for n, a in self.to_addresses],
                "cc": [f'"{n}" <{a}>' if n else a for n, a in self.cc_addresses],
                "subject": self.subject,
                "text": self.text,
                "html": self.html,
                "rcpt_tos": self.rcpt_tos,
                "headers": {"X-Tag": self.tag},
                "attachments": [
                    {
                        "filename": "data.pdf",
                        "content_type": "application/pdf",
                        "content_b64": base64.b64encode(ATTACHMENT).decode(),
                    }
                ],
            }
        )
        return json.dumps(data)

    def message(self) -> EmailMessage:
        msg = EmailMessage()
        msg["From"] = f"{self.from_[0]} <{self.from_[1]}>"
        msg["To"] = ", ".join(f"{n} <{a}>" for n, a in self.to_addresses)
        msg["Cc"] = ", ".join(a for _, a in self.cc_addresses)
        msg["Subject"] = self.subject
        msg["X-Tag"] = self.tag
        msg.set_content(self.text)
        msg.add_alternative(self.html, subtype="html")
        msg.add_attachment(ATTACHMENT, maintype="application", subtype="pdf", filename="data.pdf")
        return msg


def _tls(job: Job) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=job.ca_file)


def send_smtplib(job: Job, _: Path) -> str:
    if job.implicit_tls:
        client: smtplib.SMTP = smtplib.SMTP_SSL(job.host, job.port, context=_tls(job), timeout=30)
    else:
        client = smtplib.SMTP(job.host, job.port, timeout=30)
        client.starttls(context=_tls(job))
    with client:
        client.ehlo()
        client.user, client.password = job.username, job.password
        authobject = client.auth_plain if job.mechanism == "PLAIN" else client.auth_login
        client.auth(job.mechanism, authobject, initial_response_ok=job.mechanism == "PLAIN")
        client.send_message(job.message(), from_addr=job.mail_from, to_addrs=job.rcpt_tos)
        return str(client.noop())


def send_aiosmtplib(job: Job, _: Path) -> str:
    async def send() -> str:
        client = aiosmtplib.SMTP(
            hostname=job.host,
            port=job.port,
            use_tls=job.implicit_tls,
            start_tls=not job.implicit_tls,
            tls_context=_tls(job),
            timeout=30,
        )
        async with client:
            await client.ehlo()  # after STARTTLS the client must say EHLO again (RFC 3207 4.2)
            if job.mechanism == "PLAIN":
                await client.auth_plain(job.username, job.password)
            else:
                await client.auth_login(job.username, job.password)
            _, reply = await client.send_message(job.message(), sender=job.mail_from, recipients=job.rcpt_tos)
            return reply

    return asyncio.run(send())


def _run(command: list[str]) -> str:
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise AssertionError(f"{command[0]} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done.stdout


def send_swaks(job: Job, tmp: Path) -> str:
    data = tmp / f"{job.tag}.eml"
    data.write_bytes(job.message().as_bytes())
    return _run(
        [
            "swaks", "--server", job.host, "--port", str(job.port),
            "--tls-on-connect" if job.implicit_tls else "--tls",
            "--auth", job.mechanism, "--auth-user", job.username, "--auth-password", job.password,
            "--from", job.mail_from, "--to", ",".join(job.rcpt_tos), "--data", f"@{data}",
        ]
    )  # fmt: skip


def send_nodemailer(job: Job, _: Path) -> str:
    return _run(["node", str(CLIENTS_DIR / "node" / "send.mjs"), job.as_json()])


def send_phpmailer(job: Job, _: Path) -> str:
    return _run(["php", str(CLIENTS_DIR / "php" / "send.php"), job.as_json()])


def send_ruby_mail(job: Job, _: Path) -> str:
    return _run(["ruby", str(CLIENTS_DIR / "ruby" / "send.rb"), job.as_json()])


CLIENTS: dict[str, Callable[[Job, Path], str]] = {
    "smtplib": send_smtplib,
    "aiosmtplib": send_aiosmtplib,
    "swaks": send_swaks,
    "nodemailer": send_nodemailer,
    "phpmailer": send_phpmailer,
    "ruby-mail": send_ruby_mail,
}
TOOLS = {"swaks": "swaks", "nodemailer": "node", "phpmailer": "php", "ruby-mail": "ruby"}


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
@pytest.mark.parametrize("listener", ["starttls", "implicit-tls"])
@pytest.mark.parametrize("client", list(CLIENTS))
def test_client_sends_through_the_gateway(
    client: str, listener: str, mechanism: str, stack: Stack, sandbox: SandboxView, tmp_path: Path
) -> None:
    tool = TOOLS.get(client)
    assert tool is None or shutil.which(tool), f"{tool} is not installed: `make test` installs the client matrix"
    implicit = listener == "implicit-tls"
    job = Job(
        host="127.0.0.1",
        port=stack.ports.smtp_implicit_tls if implicit else stack.ports.smtp_starttls,
        implicit_tls=implicit,
        mechanism=mechanism,
        ca_file=str(stack.certificate.ca_file),
    )
    CLIENTS[client](job, tmp_path)

    mine = [e for e in sandbox.emails() if v2_header(e, "X-Tag") == job.tag]
    assert sorted(e["email"] for e in mine) == sorted(job.rcpt_tos), f"one call per recipient for {job.tag}"
    for record in mine:
        assert (record["flavor"], record["status"], record["account_id"]) == ("v2", "queued", 1001)
        payload = record["payload"]
        assert payload["sender"]["id"] == DEMO_SENDER_IDS["ann@example.com"]
        content = payload["content"]
        assert (content["subject"], content["encoding"], content["type"]) == (job.subject, "utf-8", "transactional")
        assert content["text"].strip() == job.text
        assert content["html"].strip() == job.html
        [attachment] = payload["attachment"]
        assert (attachment["filename"], attachment["type"]) == ("data.pdf", "pdf")
        assert base64.b64decode(attachment["content"]) == ATTACHMENT
