"""The reply table (smtp/replies.py) is the documented set: docs/smtp.md lists exactly its (code, enhanced code)
pairs, every row goes out as it is, and every reply aiosmtpd writes itself becomes a row."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import aiosmtpd.smtp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smtp_edge.smtp import replies
from smtp_edge.smtp.replies import TABLE, Reply, find, outgoing

DOCS = Path(__file__).resolve().parents[3] / "docs" / "smtp.md"
# A reply in docs/smtp.md: a backticked `NNN x.y.z ...` or `NNN ...` (no enhanced code: greeting, EHLO, 3xx).
# A bare `NNN` is a mention, not a reply.
_DOCUMENTED = re.compile(r"`([2-5]\d\d) (?:([245]\.\d{1,3}\.\d{1,3})(?=[ `]))?")

# aiosmtpd replies the edge never lets happen, and why (checked below to still be in aiosmtpd, so this list stays
# honest when aiosmtpd changes).
UNREACHABLE = {
    "454 TLS not available": "both listeners always have a TLS context",
    "538 5.7.11 Encryption required for requested authentication mechanism": "require_starttls answers AUTH first",
    "554 Command refused due to lack of security": "no STARTTLS hook: the handshake is always okay",
    "500 Error: strict ASCII mode": "SMTPUTF8 is enabled",
    "501 Error: SMTPUTF8 disabled": "SMTPUTF8 is enabled",
    "552 Error: Too much mail data": "GatewaySMTP.smtp_DATA replaces aiosmtpd's (smtp/data_reader.py)",
    "500 Line too long (see RFC5321 4.5.3.1.6)": "GatewaySMTP.smtp_DATA replaces aiosmtpd's",
    "501 Syntax: HELO hostname": "GatewaySMTP.smtp_HELO answers it (with the table's reply)",
    "501 Syntax: EHLO hostname": "GatewaySMTP.smtp_EHLO answers it",
    "501 Syntax: STARTTLS": "GatewaySMTP.smtp_STARTTLS answers it",
    "501 Syntax: DATA": "GatewaySMTP.smtp_DATA answers it",
    "501 5.5.2 Can't split auth value": "smtp/auth.py replaces aiosmtpd's auth_PLAIN",
}


def documented_pairs() -> set[tuple[int, str]]:
    return {(int(code), enhanced) for code, enhanced in _DOCUMENTED.findall(DOCS.read_text())}


def test_docs_list_exactly_the_tables_pairs() -> None:
    table = {(reply.code, reply.enhanced) for reply in TABLE}
    documented = documented_pairs()
    assert sorted(table - documented) == [], "in the reply table, missing from docs/smtp.md"
    assert sorted(documented - table) == [], "in docs/smtp.md, not in the reply table"


def test_the_doc_check_sees_a_missing_pair() -> None:
    table = {(reply.code, reply.enhanced) for reply in TABLE}
    assert (500, "5.5.6") in table and (500, "5.5.6") in documented_pairs()
    assert (599, "5.9.9") not in documented_pairs()


def _example(reply: Reply) -> str:
    return reply.format(**{field: "x" for field in re.findall(r"\{(\w+)\}", reply)})


@pytest.mark.parametrize("reply", TABLE, ids=str)
def test_every_row_goes_out_as_it_is(reply: Reply) -> None:
    line = _example(reply)
    if reply in (replies.GREETING, replies.HELLO):
        assert find(line) is None  # hostname lines are the caller's to recognise
        return
    assert outgoing(line, size_limit=1000) == line
    assert find(line) is not None
    assert reply.code // 100 == 3 or reply.enhanced[0] == str(reply.code)[0]


def _aiosmtpd_literals() -> set[str]:
    """Every plain string literal aiosmtpd passes to push() (f-strings and formatted ones are covered below)."""
    tree = ast.parse(Path(aiosmtpd.smtp.__file__).read_text())
    literals = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "push" and node.args:
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                literals.add(arg.value)
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") in ("syntaxerr",) for t in node.targets):
            assert isinstance(node.value, ast.Constant)
            literals.add(node.value.value)
    return literals


def test_every_aiosmtpd_reply_becomes_a_row() -> None:
    literals = _aiosmtpd_literals()
    assert set(UNREACHABLE) <= literals, "aiosmtpd changed: update UNREACHABLE"
    reachable = literals - set(UNREACHABLE)
    assert len(reachable) > 20
    for literal in sorted(reachable):
        assert find(outgoing(literal, size_limit=1000)) is not None, literal
    # The formatted ones: an unknown command (echoing it), VRFY of a non-address, the command too often.
    for built in ('500 Error: command "X\rY" not recognized', "502 Could not VRFY x\ny", "503 Error: send EHLO first"):
        line = outgoing(built, size_limit=1000)
        assert find(line) is not None and "\r" not in line and "\n" not in line, line


def test_a_reply_outside_the_table_is_found_out() -> None:
    assert find("500 5.0.0 Error: (ValueError) Separator is found, but chunk is longer than limit") is None
    assert find("250 2.0.0 OK\rEHLO") is None
    assert find("554 5.6.1 Message content not supported: because") is replies.UNSUPPORTED
    assert find("552 5.3.4 Message too big (limit 10 bytes)") is replies.TOO_BIG


def _first_row_matching(line: str) -> Reply | None:
    """find()'s meaning, one row at a time in table order (find() matches all rows' patterns at once)."""
    for reply in TABLE:
        if reply not in (replies.GREETING, replies.HELLO) and reply.pattern.match(line):
            return reply
    for reply in replies.WITH_DETAIL:
        if line.startswith(reply + ": ") and "\r" not in line and "\n" not in line:
            return reply
    return None


@settings(max_examples=500, deadline=None)
@given(
    reply=st.sampled_from(TABLE),
    field=st.text(alphabet=st.sampled_from(["x", " ", "\r", "\n", "1", ":", "{", "\x00"]), max_size=4),
    tail=st.sampled_from(["", ": detail", "\r\n", "x"]),
)
def test_find_is_the_first_row_in_table_order(reply: Reply, field: str, tail: str) -> None:
    line = reply.format(**{name: field for name in re.findall(r"\{(\w+)\}", reply)}) + tail
    assert find(line) is _first_row_matching(line)
