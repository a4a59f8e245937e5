"""Hypothesis fuzzes the PROXY protocol header (v1 text, v2 binary: valid, mutated, truncated, random) in front of a
dialogue, against an edge with PROXY_PROTOCOL on. A bad header closes the connection without a word (docs/smtp.md);
anything the edge does say obeys the same rules as in test_smtp_fuzz.py; the edge neither hangs nor dies."""

from __future__ import annotations

import ipaddress
import socket
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devstack.stack import Stack
from tests.security.conftest import fuzz_examples
from tests.security.smtp_replies import parse
from tests.security.test_smtp_fuzz import FUZZ, TAIL, check_session, converse, dialogues
from tests.smtp_wire import WireClient

pytestmark = pytest.mark.e2e

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
ipv4 = st.ip_addresses(v=4).map(str)
ipv6 = st.ip_addresses(v=6).map(str)
ports = st.integers(0, 65535)


def v1(family: str, src: str, dst: str, sport: int, dport: int) -> bytes:
    return f"PROXY {family} {src} {dst} {sport} {dport}\r\n".encode()


def v2(command: int, family: int, body: bytes, length: int | None = None) -> bytes:
    size = len(body) if length is None else length
    return V2_SIGNATURE + bytes([0x20 | command, family]) + struct.pack("!H", size) + body


valid_v1 = st.one_of(
    st.builds(v1, st.just("TCP4"), ipv4, ipv4, ports, ports),
    st.builds(v1, st.just("TCP6"), ipv6, ipv6, ports, ports),
    st.just(b"PROXY UNKNOWN\r\n"),
)
valid_v2 = st.one_of(
    st.builds(
        lambda s, d, sp, dp, tlv: v2(1, 0x11, ipaddress.IPv4Address(s).packed + ipaddress.IPv4Address(d).packed
                                     + struct.pack("!HH", sp, dp) + tlv),
        ipv4, ipv4, ports, ports, st.binary(max_size=20),
    ),
    st.builds(
        lambda s, d, sp, dp: v2(1, 0x21, ipaddress.IPv6Address(s).packed + ipaddress.IPv6Address(d).packed
                                + struct.pack("!HH", sp, dp)),
        ipv6, ipv6, ports, ports,
    ),
    st.just(v2(0, 0x00, b"")),  # LOCAL: a health check from the balancer itself
)  # fmt: skip
hostile_v2 = st.builds(
    v2, st.integers(0, 15), st.integers(0, 255), st.binary(max_size=60), st.none() | st.integers(0, 65535)
)


@st.composite
def mutated(draw: st.DrawFn, header: bytes) -> bytes:
    data = bytearray(header)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "cut", "insert"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[at] = draw(st.integers(0, 255))
        elif kind == "cut":
            del data[at:]
        else:
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
    return bytes(data)


headers = st.one_of(
    valid_v1,
    valid_v2,
    hostile_v2,
    (valid_v1 | valid_v2).flatmap(mutated),
    st.binary(max_size=120),
    st.text(max_size=110).map(lambda s: f"PROXY {s}\r\n".encode("utf-8", "surrogatepass")),
)


def assert_proxied_greeting(stack: Stack) -> None:
    """The liveness probe for this stack: a fresh connection with a valid header gets its greeting."""
    assert stack.edge.process is not None and stack.edge.process.poll() is None, "the edge process died"
    with socket.create_connection(("127.0.0.1", stack.ports.smtp_starttls), timeout=5) as probe:
        probe.sendall(v1("TCP4", "192.0.2.7", "127.0.0.1", 40000, stack.ports.smtp_starttls))
        greeting = probe.recv(1024)
        assert greeting.startswith(b"220 localhost ESMTP"), greeting


@settings(FUZZ, max_examples=fuzz_examples(80))  # a truncated header costs PROXY_PROTOCOL_TIMEOUT_SECONDS (1 s)
@given(header=headers, payload=dialogues)
def test_proxy_header_then_dialogue(proxy_fuzz_stack: Stack, header: bytes, payload: list[bytes]) -> None:
    client = WireClient.connect(proxy_fuzz_stack.ports.smtp_starttls)
    with client:
        # A v2 header may declare more bytes than it carries (the edge then reads them from what follows, as the
        # spec says): a second tail makes sure one QUIT is still read as a command.
        output = converse(client, [header, b"EHLO fuzz.test\r\n", *payload, TAIL])
    if output:
        replies, _ = parse(output)
        assert replies and replies[0].code in (220, 421), output[:200]
        # Not logged in, and no TLS: whatever the header said, the promises of test_smtp_fuzz.py hold.
        check_session(proxy_fuzz_stack, output, authenticated=False, alive=assert_proxied_greeting)
    else:
        assert_proxied_greeting(proxy_fuzz_stack)


def test_a_valid_header_is_greeted_and_a_bad_one_is_dropped(proxy_fuzz_stack: Stack) -> None:
    """The two outcomes the fuzz test accepts, each seen once."""
    good = WireClient.connect(proxy_fuzz_stack.ports.smtp_starttls)
    with good:
        output = converse(good, [v1("TCP4", "192.0.2.8", "127.0.0.1", 1, 2)])
    assert output.startswith(b"220 localhost ESMTP")
    bad = WireClient.connect(proxy_fuzz_stack.ports.smtp_starttls)
    with bad:
        assert converse(bad, [b"PROXY TCP4 not-an-ip\r\n"]) == b""
