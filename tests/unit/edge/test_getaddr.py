"""The edge reads the usual MAIL FROM / RCPT TO path without the stdlib's RFC 5322 parser (GatewaySMTP._getaddr):
for any argument it must give what aiosmtpd's own _getaddr gives (address and the rest, or None, None)."""

from __future__ import annotations

import aiosmtpd.smtp
import pytest
from aiosmtpd.smtp import SMTP
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from smtp_edge.smtp.protocol import GatewaySMTP

ATEXT = "abcxyzABCXYZ0189!#$%&'*+/=?^_`{|}~-"
dot_atoms = st.lists(st.text(alphabet=ATEXT, min_size=1, max_size=5), min_size=1, max_size=3).map(".".join)
addr_specs = st.builds(lambda local, domain: f"{local}@{domain}", dot_atoms, dot_atoms)
params = st.sampled_from(["", " SIZE=1234", "  BODY=8BITMIME SMTPUTF8", "\tSIZE=1", " ", "x", " (comment) SIZE=1"])
ODD = ['"', "(", ")", "\\", ":", ",", ";", "[", "]", "<", ">", "@", ".", " ", "\t", "=?", "é", "\x0b", "@a.b:"]
usual = st.builds(lambda addr, rest: f"<{addr}>{rest}", addr_specs, params).filter(lambda arg: "=?" not in arg)
odd = st.lists(st.one_of(addr_specs, st.sampled_from(ODD), params), min_size=1, max_size=6).map("".join)


def _smtp(local_part_limit: int) -> GatewaySMTP:
    smtp = GatewaySMTP.__new__(GatewaySMTP)  # _getaddr reads nothing but the limit
    smtp.local_part_limit = local_part_limit
    return smtp


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(arg=st.one_of(usual, odd, st.builds(str.__add__, st.sampled_from(ODD), usual)), limit=st.sampled_from([0, 3]))
@example(arg="<a@b.c> SIZE=1", limit=0)
@example(arg="<a.b@c> (x) SIZE=1", limit=0)
@example(arg="<abcd@e>", limit=3)
@example(arg='<"a b"@c.d>', limit=0)
@example(arg="<@route:a@b.c>", limit=0)
@example(arg="<=?utf-8?q?a?=@b.c>", limit=0)
@example(arg="<a@b.c> \x0bSIZE=1", limit=0)
def test_any_path_reads_as_aiosmtpd_reads_it(arg: str, limit: int) -> None:
    smtp = _smtp(limit)
    try:
        expected = SMTP._getaddr(smtp, arg)
    except Exception as error:  # the stdlib's parser fails on a few arguments ('"' -> IndexError): ours fails alike
        with pytest.raises(type(error)):
            smtp._getaddr(arg)
        return
    assert smtp._getaddr(arg) == expected


def test_the_usual_path_skips_the_stdlib_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(value: str) -> object:
        raise AssertionError(f"parsed by the stdlib: {value!r}")

    monkeypatch.setattr(aiosmtpd.smtp, "get_angle_addr", refuse)
    smtp = _smtp(64)
    assert smtp._getaddr("<bench@example.com> SIZE=123") == ("bench@example.com", "SIZE=123")
    assert smtp._getaddr("<sink0@example.net>") == ("sink0@example.net", "")
    with pytest.raises(AssertionError, match="parsed by the stdlib"):
        smtp._getaddr('<"quoted local"@example.com>')
