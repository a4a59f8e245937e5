"""The SMTP dialogue on a raw socket: every reply code the edge documents (docs/smtp.md), exact on the wire."""

from __future__ import annotations

import ssl
import time
import uuid

import pytest

from devstack.stack import Stack
from tests.conftest import SandboxView, log_text, metric
from tests.e2e.v2 import add_sender
from tests.smtp_wire import Reply, WireClient, b64, open_session

pytestmark = pytest.mark.e2e


def simple() -> bytes:
    """A small message, a new one each time: identical bytes without Message-ID are the same message for the
    gateway (docs/mapping.md, "Message identity"), so a test that wants a new delivery must send a new message."""
    return (
        f"From: ann@example.com\r\nTo: bob@example.net\r\nMessage-ID: <{uuid.uuid4().hex}@test>\r\n"
        "Subject: wire\r\n\r\nbody\r\n.\r\n"
    ).encode()


def ehlo_keywords(reply_lines: tuple[str, ...]) -> set[str]:
    return {line.split(" ", 1)[0].upper() for line in reply_lines[1:]}


def auth_mechanisms(reply_lines: tuple[str, ...]) -> set[str]:
    [auth] = [line for line in reply_lines if line.upper().startswith("AUTH ")]
    return set(auth.split()[1:])


def test_ehlo_before_and_after_starttls(stack: Stack, client_tls: ssl.SSLContext) -> None:
    with WireClient.connect(stack.ports.smtp_starttls) as client:
        greeting = client.reply()
        assert greeting.code == 220 and "ESMTP" in greeting.last
        before = client.cmd("EHLO client.test")
        assert before.code == 250
        assert {"SIZE", "8BITMIME", "SMTPUTF8", "STARTTLS", "PIPELINING", "ENHANCEDSTATUSCODES"} <= ehlo_keywords(
            before.lines
        )
        assert "AUTH" not in ehlo_keywords(before.lines)
        assert "SIZE 26214400" in before.lines
        client.starttls(client_tls)
        after = client.cmd("EHLO client.test")
        assert "STARTTLS" not in ehlo_keywords(after.lines)
        assert auth_mechanisms(after.lines) == {"PLAIN", "LOGIN"}


def test_implicit_tls_listener_offers_auth_not_starttls(stack: Stack, client_tls: ssl.SSLContext) -> None:
    with WireClient.connect(stack.ports.smtp_implicit_tls, tls=client_tls) as client:
        assert client.reply().code == 220
        lines = client.cmd("EHLO client.test").lines
        assert auth_mechanisms(lines) == {"PLAIN", "LOGIN"}
        assert "STARTTLS" not in ehlo_keywords(lines)
        again = client.cmd("STARTTLS")
        assert (again.code, again.enhanced()) == (503, "5.5.1")


def test_a_second_starttls_is_refused(stack: Stack, client_tls: ssl.SSLContext) -> None:
    with open_session(stack.ports.smtp_starttls, client_tls, login=False) as client:
        again = client.cmd("STARTTLS")
        assert (again.code, again.enhanced()) == (503, "5.5.1")
        assert client.cmd("NOOP").code == 250  # still talking over the one TLS layer


@pytest.mark.parametrize(
    "command",
    ["MAIL FROM:<a@example.com>", "AUTH PLAIN " + b64("\0demo@example.com\0demo-password"), "RCPT TO:<b@x.test>"],
)
def test_commands_before_starttls_get_530(stack: Stack, command: str) -> None:
    with WireClient.connect(stack.ports.smtp_starttls) as client:
        client.reply()
        client.cmd("EHLO client.test")
        reply = client.cmd(command)
        assert (reply.code, reply.enhanced()) == (530, "5.7.0")


def _client_context(version: ssl.TLSVersion) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_ciphers("DEFAULT:@SECLEVEL=0")  # let this client really offer old versions
    context.minimum_version = version
    context.maximum_version = version
    return context


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_tls_below_1_2_is_refused_by_the_server(stack: Stack) -> None:
    # The control: the same permissive client pinned to TLS 1.2 gets through.
    with WireClient.connect(stack.ports.smtp_implicit_tls, tls=_client_context(ssl.TLSVersion.TLSv1_2)) as ok:
        assert ok.reply().code == 220
    for old in (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1):
        with pytest.raises(ssl.SSLError):
            WireClient.connect(stack.ports.smtp_implicit_tls, tls=_client_context(old)).reply()


def test_auth_plain_without_initial_response(stack: Stack, client_tls: ssl.SSLContext) -> None:
    with open_session(stack.ports.smtp_starttls, client_tls, login=False) as client:
        challenge = client.cmd("AUTH PLAIN")
        assert challenge.code == 334
        reply = client.cmd(b64("\0demo@example.com\0demo-password"))
        assert (reply.code, reply.enhanced()) == (235, "2.7.0")


def test_auth_login_with_and_without_initial_username(stack: Stack, client_tls: ssl.SSLContext) -> None:
    with open_session(stack.ports.smtp_starttls, client_tls, login=False) as client:
        first = client.cmd("AUTH LOGIN")
        assert (first.code, first.last) == (334, b64("Username:"))
        second = client.cmd(b64("demo@example.com"))
        assert (second.code, second.last) == (334, b64("Password:"))
        assert client.cmd(b64("demo-password")).code == 235
    with open_session(stack.ports.smtp_implicit_tls, client_tls, implicit=True, login=False) as client:
        challenge = client.cmd("AUTH LOGIN " + b64("demo@example.com"))
        assert (challenge.code, challenge.last) == (334, b64("Password:"))
        assert client.cmd(b64("demo-password")).code == 235


@pytest.mark.parametrize(
    ("exchange", "code", "enhanced"),
    [
        (["AUTH PLAIN", "*"], 501, "5.7.0"),
        (["AUTH LOGIN", "*"], 501, "5.7.0"),
        (["AUTH LOGIN", b64("demo@example.com"), "*"], 501, "5.7.0"),
        (["AUTH PLAIN ="], 501, "5.5.2"),
        (["AUTH PLAIN not-base64!"], 501, "5.5.2"),
        (["AUTH PLAIN " + b64("only-one-part")], 501, "5.5.2"),
        (["AUTH CRAM-MD5"], 504, "5.5.4"),
        (["AUTH PLAIN " + b64("\0demo@example.com\0wrong")], 535, "5.7.8"),
    ],
)
def test_auth_refusals_leave_the_session_usable(
    stack: Stack, client_tls: ssl.SSLContext, exchange: list[str], code: int, enhanced: str
) -> None:
    with open_session(stack.ports.smtp_starttls, client_tls, login=False) as client:
        for line in exchange[:-1]:
            assert client.cmd(line).code == 334
        reply = client.cmd(exchange[-1])
        assert (reply.code, reply.enhanced()) == (code, enhanced)
        # Exactly one reply: the next command's answer is its own.
        assert client.cmd("NOOP").code == 250
        assert client.login_plain("demo@example.com", "demo-password").code == 235
        again = client.login_plain("demo@example.com", "demo-password")
        assert (again.code, again.enhanced()) == (503, "5.5.1")


def test_transaction_replies(stack: Stack, sandbox: SandboxView, client_tls: ssl.SSLContext) -> None:
    with open_session(stack.ports.smtp_starttls, client_tls) as client:
        assert client.cmd("DATA").enhanced() == "5.5.1"
        assert client.cmd("RCPT TO:<b@example.net>").enhanced() == "5.5.1"
        bad_sender = client.cmd("MAIL FROM:<not-an-address>")
        assert (bad_sender.code, bad_sender.enhanced()) == (501, "5.1.7")
        big = client.cmd("MAIL FROM:<a@example.com> SIZE=999999999")
        assert (big.code, big.enhanced()) == (552, "5.3.4")
        ok = client.cmd("MAIL FROM:<a@example.com> SIZE=100")
        assert (ok.code, ok.enhanced()) == (250, "2.1.0")
        nested = client.cmd("MAIL FROM:<a@example.com>")
        assert (nested.code, nested.enhanced()) == (503, "5.5.1")
        bad_rcpt = client.cmd("RCPT TO:<no-at-sign>")
        assert (bad_rcpt.code, bad_rcpt.enhanced()) == (501, "5.1.3")
        assert client.cmd("RCPT TO:<bob@example.net>").enhanced() == "2.1.5"
        vrfy = client.cmd("VRFY bob")
        assert (vrfy.code, vrfy.enhanced()) == (252, "2.5.0")
        unknown = client.cmd("FROB")
        assert (unknown.code, unknown.enhanced()) == (500, "5.5.1")
        assert client.cmd("NOOP").last == "2.0.0 OK"
        assert client.cmd("RSET").last == "2.0.0 OK"
        assert client.cmd("DATA").code == 503  # RSET cleared the transaction
        assert client.cmd("QUIT").last == "2.0.0 Bye"
    assert sandbox.emails() == []


def test_pipelined_batch_gets_every_reply_in_order(
    stack: Stack, sandbox: SandboxView, client_tls: ssl.SSLContext
) -> None:
    with open_session(stack.ports.smtp_starttls, client_tls) as client:
        client.send(
            b"MAIL FROM:<ann@example.com>\r\nRCPT TO:<bob@example.net>\r\nRCPT TO:<bad>\r\n"
            b"RCPT TO:<carol@example.org>\r\nDATA\r\n"
        )
        codes = [client.reply().code for _ in range(5)]
        assert codes == [250, 250, 501, 250, 354]
        client.send(simple())
        assert client.reply().code == 250
        client.send(b"RSET\r\nNOOP\r\nQUIT\r\n")
        assert [client.reply().code for _ in range(3)] == [250, 250, 221]
    assert sorted(record["email"] for record in sandbox.emails()) == ["bob@example.net", "carol@example.org"]


def test_overlong_data_line_gets_500_and_the_session_goes_on(
    stack: Stack, sandbox: SandboxView, client_tls: ssl.SSLContext
) -> None:
    counted_before = metric(stack.ports.edge_http, "smtp_messages_total", code="500")
    with open_session(stack.ports.smtp_starttls, client_tls) as client:
        client.cmd("MAIL FROM:<ann@example.com>")
        client.cmd("RCPT TO:<bob@example.net>")
        assert client.cmd("DATA").code == 354
        client.send(b"Subject: long\r\n\r\n" + b"x" * 2000 + b"\r\n.\r\n")
        reply = client.reply()
        assert (reply.code, reply.enhanced()) == (500, "5.5.2")
        client.cmd("MAIL FROM:<ann@example.com>")
        client.cmd("RCPT TO:<bob@example.net>")
        assert client.cmd("DATA").code == 354
        client.send(simple())
        assert client.reply().code == 250
    assert len(sandbox.emails()) == 1
    assert metric(stack.ports.edge_http, "smtp_messages_total", code="500") == counted_before + 1


def test_smtputf8_addresses_and_headers(stack: Stack, sandbox: SandboxView, client_tls: ssl.SSLContext) -> None:
    with open_session(stack.ports.smtp_starttls, client_tls) as client:
        sender_id = add_sender(stack.sandbox_url, "j\u00f6rg@b\u00fccher.example")
        assert client.cmd("MAIL FROM:<j\u00f6rg@b\u00fccher.example> SMTPUTF8 BODY=8BITMIME".encode()).code == 250
        assert client.cmd("RCPT TO:<\u7528\u6237@\u4f8b\u5b50.example>".encode()).code == 250
        assert client.cmd("DATA").code == 354
        client.send(
            "From: J\u00f6rg <j\u00f6rg@b\u00fccher.example>\r\nTo: \u7528\u6237@\u4f8b\u5b50.example\r\n"
            "Subject: gr\u00fc\u00dfe \u2603\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 8bit\r\n\r\nk\u00f6rper\r\n.\r\n".encode()
        )
        assert client.reply().code == 250
    [record] = sandbox.emails()
    payload = record["payload"]
    assert payload["sender"] == {"id": sender_id, "name": "J\u00f6rg"}
    assert record["email"] == payload["email"] == "\u7528\u6237@\u4f8b\u5b50.example"
    assert payload["content"]["subject"] == "gr\u00fc\u00dfe \u2603"
    assert payload["content"]["text"] == "k\u00f6rper\n"


def test_helo_help_and_the_unknown_command_cap(stack: Stack, client_tls: ssl.SSLContext) -> None:
    with WireClient.connect(stack.ports.smtp_implicit_tls, tls=client_tls) as client:
        client.reply()
        helo = client.cmd("HELO old-client.test")
        assert (helo.code, helo.last) == (250, "localhost")
        assert client.login_plain("demo@example.com", "demo-password").code == 500  # AUTH needs EHLO
        assert client.cmd("EHLO client.test").code == 250
        assert client.login_plain("demo@example.com", "demo-password").code == 235
        help_reply = client.cmd("HELP")
        assert help_reply.code == 250 and help_reply.enhanced() == "2.0.0"
        for _ in range(4):
            assert client.cmd("XYZZY").code == 500
        last = client.cmd("XYZZY")
        assert (last.code, last.enhanced()) == (502, "5.5.1")
        assert client.closed_by_server()


def test_a_client_that_hangs_up_during_forwarding_is_accounted_for(
    stack: Stack, sandbox: SandboxView, client_tls: ssl.SSLContext
) -> None:
    before = metric(stack.ports.edge_http, "smtp_client_disconnected_during_forward_total", outcome="accepted")
    sandbox.faults({"emails": {"latency_ms": 800}})
    try:
        client = open_session(stack.ports.smtp_starttls, client_tls)
        client.cmd("MAIL FROM:<ann@example.com>")
        client.cmd("RCPT TO:<bob@example.net>")
        assert client.cmd("DATA").code == 354
        client.send(simple())
        client.close()  # gone before the answer

        deadline = time.monotonic() + 15
        while (
            metric(stack.ports.edge_http, "smtp_client_disconnected_during_forward_total", outcome="accepted") == before
        ):
            assert time.monotonic() < deadline, "the abandoned submission was never accounted for"
            time.sleep(0.1)
    finally:
        sandbox.faults({})
    assert len(sandbox.emails()) == 1  # it was not cut off half-way: the API has it, once


def test_the_null_sender_is_accepted(stack: Stack, sandbox: SandboxView, client_tls: ssl.SSLContext) -> None:
    with open_session(stack.ports.smtp_starttls, client_tls) as client:
        assert client.cmd("MAIL FROM:<>").code == 250
        assert client.cmd("RCPT TO:<bob@example.net>").code == 250
        assert client.cmd("DATA").code == 354
        client.send(b"From: Auto Reply <auto@example.com>\r\nSubject: away\r\n\r\nout of office\r\n.\r\n")
        assert client.reply().code == 250
        # Without a From header there is no sender at all: refused, precisely.
        client.cmd("MAIL FROM:<>")
        client.cmd("RCPT TO:<bob@example.net>")
        client.cmd("DATA")
        client.send(b"Subject: nobody\r\n\r\nwho sent this?\r\n.\r\n")
        nobody = client.reply()
        # In the client's terms, before anything is forwarded (not the forwarder's field names).
        assert (nobody.code, nobody.last) == (
            550,
            "5.6.0 Message has no sender: add a From: header (MAIL FROM:<> is empty)",
        )
    [record] = sandbox.emails()
    assert record["payload"]["sender"]["name"] == "Auto Reply"  # the header From decides the sender
    assert record["email"] == "bob@example.net"


def test_auth_logs_no_deprecation_warning(stack: Stack, client_tls: ssl.SSLContext) -> None:
    with open_session(stack.ports.smtp_implicit_tls, client_tls, implicit=True) as client:  # logs in
        assert client.cmd("NOOP").code == 250
        assert client.cmd("MAIL FROM:<ann@example.com>").code == 250  # authenticated for aiosmtpd too
    assert "login_data is deprecated" not in log_text(stack)


# A command line per command (QUIT last: it ends the session); what "does not work here" means: refused because
# of the session's state (TLS, AUTH), not because of the transaction's order.
PROBES = {
    "AUTH": "AUTH PLAIN " + b64("\0demo@example.com\0demo-password"),
    "DATA": "DATA",
    "EHLO": "EHLO client.test",
    "EXPN": "EXPN list",
    "HELO": "HELO client.test",
    "HELP": "HELP",
    "MAIL": "MAIL FROM:<ann@example.com>",
    "NOOP": "NOOP",
    "QUIT": "QUIT",
    "RCPT": "RCPT TO:<bob@example.net>",
    "RSET": "RSET",
    "STARTTLS": "STARTTLS",
    "VRFY": "VRFY bob",
}


def refused_in_this_state(reply: Reply) -> bool:
    return (
        reply.code in (500, 502, 530)
        or (reply.code == 503 and ("Already" in reply.last or "TLS already" in reply.last))
        or reply.code == 538
    )


@pytest.mark.parametrize("authenticated", [False, True], ids=["before-auth", "after-auth"])
def test_help_lists_exactly_what_works(stack: Stack, client_tls: ssl.SSLContext, authenticated: bool) -> None:
    def fresh() -> WireClient:
        return open_session(stack.ports.smtp_implicit_tls, client_tls, implicit=True, login=authenticated)

    with fresh() as client:
        listing = client.cmd("HELP")
        assert (listing.code, listing.enhanced()) == (250, "2.0.0")
        listed = set(listing.last.split(": ", 1)[1].split())
        assert client.cmd("HELP MAIL").code == (250 if authenticated else 501)
    works = set()
    for command, line in PROBES.items():
        with fresh() as client:
            if command == "STARTTLS":  # on the implicit-TLS listener TLS is already on
                assert refused_in_this_state(client.cmd(line))
                continue
            if not refused_in_this_state(client.cmd(line)):
                works.add(command)
    assert listed == works


def test_help_is_not_advertised_before_starttls(stack: Stack, client_tls: ssl.SSLContext) -> None:
    with WireClient.connect(stack.ports.smtp_starttls) as client:
        client.reply()
        assert "HELP" not in ehlo_keywords(client.cmd("EHLO client.test").lines)
        before = client.cmd("HELP")
        assert (before.code, before.enhanced()) == (530, "5.7.0")  # like everything but EHLO, NOOP, STARTTLS, QUIT
        client.starttls(client_tls)
        assert "HELP" in ehlo_keywords(client.cmd("EHLO client.test").lines)
        assert client.cmd("HELP").code == 250  # before AUTH too: it discloses nothing
