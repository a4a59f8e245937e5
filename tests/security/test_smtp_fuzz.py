"""Hypothesis drives the raw SMTP dialogue through real sockets (and real TLS) into a running edge.

Every example is one connection: a mode (before STARTTLS, after STARTTLS, implicit TLS, or authenticated), then
fuzzed command lines and pipelined batches (commands, arguments, AUTH payloads, line endings, raw bytes), then a tail
that brings any state back to QUIT. What must hold for every example:
- every byte the edge sends is a well-formed reply line, and every reply is a row of the edge's reply table
  (smtp_edge/smtp/replies.py, the set docs/smtp.md lists): code, RFC 3463 enhanced code and text;
- the edge never hangs (the session ends within a deadline) and never crashes (the process lives, a new connection
  gets its greeting);
- without AUTH over TLS nothing is accepted: no 235, no 250 for MAIL or RCPT, no 354, and the sandbox records nothing.
"""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devstack.stack import Stack
from smtp_edge.smtp import replies
from tests.conftest import SandboxView
from tests.security.conftest import fuzz_derandomized, fuzz_examples
from tests.security.smtp_replies import Reply, broken_promises, parse
from tests.smtp_wire import WireClient, b64

pytestmark = pytest.mark.e2e

READY_FOR_TLS = b"220 2.0.0 Ready to start TLS\r\n"
SESSION_DEADLINE = 8.0  # seconds for one example's whole session; the edge answers each line in milliseconds
# Whatever state the fuzzed lines left (inside DATA, inside an AUTH LOGIN challenge): end it, then QUIT.
TAIL = b"\r\n.\r\nQUIT\r\nQUIT\r\nQUIT\r\n"

VERBS = [
    "EHLO", "HELO", "MAIL", "RCPT", "DATA", "RSET", "NOOP", "QUIT", "VRFY", "EXPN", "HELP", "AUTH", "STARTTLS",
    "BDAT", "XCLIENT", "ETRN", "TURN", "ehlo", "Mail", "",
]  # fmt: skip
MECHANISMS = ["PLAIN", "LOGIN", "plain", "CRAM-MD5", "XOAUTH2", "GSSAPI", "", "PLAIN PLAIN"]

printable = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40)
unicode_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
addresses = st.one_of(
    st.just("<ann@example.com>"),
    st.just("<>"),
    printable.map(lambda s: f"<{s}>"),
    st.builds(lambda local, domain: f"<{local}@{domain}>", printable, printable),
    unicode_text.map(lambda s: f"<{s}@example.com>"),
    printable,
)
mail_params = st.lists(
    st.sampled_from(["SIZE=1000", "SIZE=99999999999", "SIZE=x", "BODY=8BITMIME", "BODY=BINARYMIME", "SMTPUTF8",
                     "AUTH=<>", "RET=FULL", "ENVID=x", "NOTIFY=NEVER", "FOO=bar", "=", "SIZE="]),
    max_size=3,
).map(lambda ps: "".join(" " + p for p in ps))  # fmt: skip


def _b64_blob(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


sasl_blobs = st.one_of(
    st.binary(max_size=60).map(_b64_blob),  # NULs, invalid UTF-8, wrong number of fields
    st.builds(lambda a, b, c: _b64_blob(f"{a}\0{b}\0{c}".encode()), printable, printable, printable),
    st.just("="),
    st.just("*"),
    printable,  # mostly not base64
    st.integers(900, 1100).map(lambda n: "QUFB" * (n // 4)),  # near the line limit
)
arguments = st.one_of(
    st.just(""),
    printable,
    unicode_text,
    st.builds(lambda a, p: f"FROM:{a}{p}", addresses, mail_params),
    st.builds(lambda a, p: f"TO:{a}{p}", addresses, mail_params),
    st.builds(lambda m, blob: f"{m} {blob}".strip(), st.sampled_from(MECHANISMS), sasl_blobs),
    st.sampled_from(MECHANISMS),
    st.integers(990, 1100).map(lambda n: "A" * n),  # around the 1000-octet command limit (and above 512)
)
line_ends = st.sampled_from([b"\r\n"] * 8 + [b"\n", b"\r", b"\r\r\n", b"\x00\r\n"])


@st.composite
def command_lines(draw: st.DrawFn) -> bytes:
    verb = draw(st.sampled_from(VERBS) | printable.filter(lambda s: " " not in s))
    argument = draw(arguments)
    line = f"{verb} {argument}" if argument else verb
    return line.encode("utf-8", "surrogatepass") + draw(line_ends)


steps = st.one_of(
    command_lines(),
    st.lists(command_lines(), min_size=2, max_size=6).map(b"".join),  # a pipelined batch, one write
    sasl_blobs.map(lambda s: s.encode() + b"\r\n"),  # a challenge response (or a stray line)
    st.binary(min_size=1, max_size=120),  # anything at all
)
dialogues = st.lists(steps, min_size=1, max_size=8)


@dataclass(frozen=True)
class Mode:
    name: str
    implicit: bool
    starttls: bool
    login: bool


PLAIN = Mode("before STARTTLS", implicit=False, starttls=False, login=False)
AFTER_STARTTLS = Mode("after STARTTLS", implicit=False, starttls=True, login=False)
IMPLICIT = Mode("implicit TLS", implicit=True, starttls=False, login=False)
AUTHENTICATED = Mode("implicit TLS, authenticated", implicit=True, starttls=False, login=True)


def open_client(stack: Stack, tls: ssl.SSLContext, mode: Mode) -> WireClient:
    port = stack.ports.smtp_implicit_tls if mode.implicit else stack.ports.smtp_starttls
    client = WireClient.connect(port, tls=tls if mode.implicit else None)
    client.sock.settimeout(5)
    assert client.reply().code == 220
    if mode.implicit or mode.starttls:
        assert client.cmd("EHLO fuzz.test").code == 250
    if mode.starttls:
        client.starttls(tls)
        client.sock.settimeout(5)
        assert client.cmd("EHLO fuzz.test").code == 250
    if mode.login:
        assert client.login_plain("demo@example.com", "demo-password").code == 235
    return client


def converse(client: WireClient, payload: list[bytes]) -> bytes:
    """Sends each step as one write, then the tail; returns everything the edge sent until it closed. A session
    still open at the deadline is a hang."""
    sock = client.sock
    received = bytearray(client._buffer)
    try:
        for step in [*payload, TAIL]:
            sock.sendall(step)
    except OSError:
        pass  # the edge may close first (too many unknown commands, a failed TLS handshake): read what it said
    deadline = time.monotonic() + SESSION_DEADLINE
    # A plaintext STARTTLS the edge accepted: what was pipelined behind it was discarded (as it must be, see
    # test_starttls_injection.py) and the edge now waits for a ClientHello. Bytes sent now are what it gets
    # instead: a failed handshake, and the edge hangs up.
    nudged = isinstance(sock, ssl.SSLSocket)
    while True:
        if not nudged and READY_FOR_TLS in received:
            nudged = True
            with contextlib.suppress(OSError):
                sock.sendall(b"QUIT\r\n")
            deadline = min(deadline, time.monotonic() + 3)  # a failed handshake closes in milliseconds
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"hang: the session was still open after {SESSION_DEADLINE}s; got {bytes(received)!r}")
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except (ConnectionError, ssl.SSLError):
            break
        if not chunk:
            break
        received += chunk
    return bytes(received)


def assert_alive(stack: Stack) -> None:
    assert stack.edge.process is not None and stack.edge.process.poll() is None, "the edge process died"
    with socket.create_connection(("127.0.0.1", stack.ports.smtp_starttls), timeout=5) as probe:
        greeting = probe.recv(1024)
        assert greeting.startswith(b"220 localhost ESMTP"), greeting


def accepted_without_auth(replies: list[Reply]) -> list[Reply]:
    """Replies that would mean the edge took mail (or credentials) from a client that never authenticated."""
    bad = []
    for reply in replies:
        enhanced = reply.lines[-1].split(" ", 1)[0]
        took_mail = reply.code == 250 and (enhanced in ("2.1.0", "2.1.5") or "queued" in reply.lines[-1])
        if reply.code in (235, 354) or took_mail:
            bad.append(reply)
    return bad


def check_session(
    stack: Stack, output: bytes, *, authenticated: bool, alive: Callable[[Stack], None] | None = None
) -> None:
    found, malformed = parse(output)
    assert malformed == [], malformed
    problems = broken_promises(found)
    assert problems == [], problems
    if not authenticated:
        assert accepted_without_auth(found) == []
    (alive or assert_alive)(stack)


FUZZ = settings(
    max_examples=fuzz_examples(400),
    deadline=None,
    derandomize=fuzz_derandomized(),
    report_multiple_bugs=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
)


@FUZZ
@given(mode=st.sampled_from([PLAIN, AFTER_STARTTLS, IMPLICIT]), payload=dialogues)
def test_unauthenticated_dialogue(
    fuzz_stack: Stack, client_tls: ssl.SSLContext, fuzz_sandbox: SandboxView, mode: Mode, payload: list[bytes]
) -> None:
    with open_client(fuzz_stack, client_tls, mode) as client:
        output = converse(client, payload)
    check_session(fuzz_stack, output, authenticated=False)
    assert fuzz_sandbox.emails(content=False) == [], "an unauthenticated session got mail to the API"


@FUZZ
@given(payload=dialogues)
def test_authenticated_dialogue(fuzz_stack: Stack, client_tls: ssl.SSLContext, payload: list[bytes]) -> None:
    with open_client(fuzz_stack, client_tls, AUTHENTICATED) as client:
        output = converse(client, payload)
    check_session(fuzz_stack, output, authenticated=True)


@FUZZ
@given(payload=dialogues)
def test_a_transaction_is_never_accepted_without_auth(
    fuzz_stack: Stack, client_tls: ssl.SSLContext, fuzz_sandbox: SandboxView, payload: list[bytes]
) -> None:
    """A whole valid transaction around the fuzzed lines, on TLS, never logged in: the open-relay check."""
    transaction = [b"MAIL FROM:<ann@example.com>\r\n", b"RCPT TO:<bob@example.net>\r\n", b"DATA\r\n"]
    message = b"Subject: relay?\r\n\r\nbody\r\n.\r\n"
    with open_client(fuzz_stack, client_tls, IMPLICIT) as client:
        output = converse(client, [*payload, *transaction, message])
    check_session(fuzz_stack, output, authenticated=False)
    assert fuzz_sandbox.emails(content=False) == []


def test_the_relay_check_sees_an_accepted_transaction(
    fuzz_stack: Stack, client_tls: ssl.SSLContext, fuzz_sandbox: SandboxView
) -> None:
    """The same transaction, logged in: the checks above would flag every reply they must flag."""
    with open_client(fuzz_stack, client_tls, AUTHENTICATED) as client:
        output = converse(
            client,
            [b"MAIL FROM:<ann@example.com>\r\nRCPT TO:<bob@example.net>\r\nDATA\r\n", b"Subject: x\r\n\r\nhi\r\n.\r\n"],
        )
    replies, malformed = parse(output)
    assert malformed == []
    assert [r.code for r in accepted_without_auth(replies)] == [250, 250, 354, 250]
    assert len(fuzz_sandbox.emails(content=False)) == 1


def test_the_reply_checks_catch_broken_replies() -> None:
    replies, malformed = parse(b"250-localhost\r\n251 x\r\n299 OK\r\n250 OK\r\n5xx bad\r\n421 4.7.0 ok\r\nabc")
    assert len(malformed) == 3  # the code change inside a multi-line reply, "5xx bad", the unterminated "abc"
    problems = broken_promises(replies)
    assert any("299 'OK'" in p for p in problems)
    assert any("250 'OK'" in p for p in problems)  # no enhanced code
    assert broken_promises([Reply(250, ("localhost",))]) == []  # HELO
    assert broken_promises([Reply(421, ("4.7.0 Too many connections, try again later",))]) == []
    assert broken_promises([Reply(421, ("4.7.0 Too many connections, try later",))]) != []  # not the table's text
    assert broken_promises([Reply(500, ("5.0.0 Error: (ValueError) Separator is found",))]) != []
    assert broken_promises([Reply(530, ("5.7.0 " + b64("x"),))]) != []


# Defects this fuzzer found, fixed (docs/security.md, "Defects the fuzzers found"): each test reproduces one.


@pytest.mark.parametrize("verb", ["EHLO", "HELO"])
def test_hello_without_a_name_gets_an_enhanced_code(fuzz_stack: Stack, client_tls: ssl.SSLContext, verb: str) -> None:
    with open_client(fuzz_stack, client_tls, IMPLICIT) as client:
        reply = client.cmd(verb)
    assert f"{reply.code} {reply.last}" == replies.SYNTAX.format(syntax=f"{verb} hostname")


def test_help_with_an_unknown_topic_gets_a_documented_reply(fuzz_stack: Stack, client_tls: ssl.SSLContext) -> None:
    with open_client(fuzz_stack, client_tls, AUTHENTICATED) as client:
        reply = client.cmd("HELP 0")
    assert replies.find(f"{reply.code} {reply.last}") is replies.HELP_UNKNOWN
    assert reply.last.startswith("5.5.4 No help for '0' here; Supported commands: ")


def test_an_overlong_auth_response_gets_a_documented_reply(fuzz_stack: Stack, client_tls: ssl.SSLContext) -> None:
    with open_client(fuzz_stack, client_tls, IMPLICIT) as client:
        assert client.cmd("AUTH PLAIN").code == 334
        reply = client.cmd("QUFB" * 300)
        assert f"{reply.code} {reply.last}" == replies.AUTH_LINE_TOO_LONG
        assert client.cmd("NOOP").last == "2.0.0 OK"  # the whole line was dropped; the session goes on


@pytest.mark.parametrize(
    "payload",
    [
        # The fuzzer's finding: whether the edge got stuck depended on the two writes arriving together.
        [b"A" * 1100 + b"\r\n", b"STARTTLS\r\n" + b"A" * 1100 + b"\r\n"],
        # The same, every time: more than twice the reader's 1001-byte line limit behind STARTTLS, in one write.
        [b"STARTTLS\r\n" + b"A" * 3000 + b"\r\n"],
    ],
    ids=["after an over-long line", "3000 bytes pipelined"],
)
def test_starttls_after_an_overlong_line_fails_a_bad_handshake(
    fuzz_stack: Stack, client_tls: ssl.SSLContext, payload: list[bytes]
) -> None:
    """A handshake that cannot succeed (the client sends plain text after 220) must end the connection at once
    (converse() allows 3 s after the 220, not COMMAND_TIMEOUT_SECONDS), and nothing pipelined behind STARTTLS is
    answered."""
    with open_client(fuzz_stack, client_tls, PLAIN) as client:
        output = converse(client, payload)
    assert output.endswith(READY_FOR_TLS), output


def test_a_bare_cr_in_an_unknown_command_is_not_echoed(fuzz_stack: Stack, client_tls: ssl.SSLContext) -> None:
    with open_client(fuzz_stack, client_tls, AUTHENTICATED) as client:
        output = converse(client, [b"EHLO\rEHLO\r\n", b"VRFY @\rb\r\n"])
    found, malformed = parse(output)
    assert malformed == [], malformed
    assert [f"{r.code} {r.lines[-1]}" for r in found][:2] == [
        replies.UNKNOWN_COMMAND.format(command="EHLO?EHLO"),
        replies.CANNOT_VRFY.format(address="@?b"),
    ]


def test_fuzzed_sessions_left_only_json_log_lines(fuzz_stack: Stack, client_tls: ssl.SSLContext) -> None:
    """Log injection: whatever a client sends (CR, LF, NUL, escapes, invalid UTF-8) every log line stays one JSON
    object. Runs after the fuzz tests above, on the same stack and log files; a hostile line is sent here too."""
    with open_client(fuzz_stack, client_tls, IMPLICIT) as client:
        converse(client, [b'X\x1b[31m"}\n{"level": "critical", "message": "forged"}\r\n', b"\xff\xfe\x00\r\n"])
    for service in fuzz_stack.services:
        assert service.log_path is not None
        lines = Path(service.log_path).read_bytes().splitlines()
        assert lines, service.name
        for line in lines:
            entry = json.loads(line)  # raises on a line that is not JSON (a forged or broken line)
            assert isinstance(entry, dict) and entry.get("message") != "forged", line[:200]
