"""gateway_mime.email_policy reuses work policy.default would redo; what it hands back must be what policy.default
would have made: the same parse of every corpus message, the same header objects for any header value."""

from __future__ import annotations

from email import policy
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway_mime import email_policy, headers, parse_message, parser
from gateway_mime.email_policy import POLICY
from tests.unit.mime.shapes import crlf

CORPUS = Path(__file__).resolve().parents[2] / "data" / "mime"
HEAD = b"From: a@example.com\r\nTo: b@example.org\r\nSubject: s\r\nMessage-ID: <m@example.com>\r\n"
# Header lines whose parse goes through every path of the policy: parameters, RFC 2231, defects, long values.
ODD_PARTS = [
    b'Content-Type: text/plain; charset="\r\n\r\nbody\r\n',
    b"Content-Disposition: attachment; filename*0*=bogus''%ZZ; filename*1=\"\r\n\r\nx\r\n",
    b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: text/html; charset=latin1\r\n\r\n'
    b"<p>\xe9</p>\r\n--b\r\nContent-Type: application/pdf; name=" + b"n" * 600 + b".pdf\r\n\r\nx\r\n--b--\r\n",
    b"Content-Type: text/plain; charset=utf-16\r\n\r\n\xff\xfe\x00\xd8\r\n",
    b"Content-Type: pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!!\r\n",
]
MESSAGES = [crlf(path.read_bytes()) for path in sorted(CORPUS.glob("*.eml"))] + [HEAD + part for part in ODD_PARTS]


def test_every_message_parses_as_with_policy_default(monkeypatch: pytest.MonkeyPatch) -> None:
    assert len(MESSAGES) > 20
    ours = [parse_message(raw) for raw in MESSAGES]
    again = [parse_message(raw) for raw in MESSAGES]  # every short header now comes from the memo
    with monkeypatch.context() as patch:
        patch.setattr(parser, "POLICY", policy.default)
        patch.setattr(headers, "POLICY", policy.default)
        stdlib = [parse_message(raw) for raw in MESSAGES]
    assert ours == stdlib
    assert again == stdlib


def _same_header(name: str, value: str) -> None:
    try:
        expected = policy.default.header_fetch_parse(name, value)
    except Exception as error:  # the stdlib's parse fails on a few values (To: '"' -> IndexError): ours fails alike
        with pytest.raises(type(error)):
            POLICY.header_fetch_parse(name, value)
        return
    for got in (POLICY.header_fetch_parse(name, value), POLICY.header_fetch_parse(name, value)):
        assert str(got) == str(expected)
        assert type(got).__mro__[1:] == type(expected).__mro__[1:]
        assert [type(d) for d in got.defects] == [type(d) for d in expected.defects]
        for attribute in ("content_type", "params", "addresses", "content_disposition", "cte"):
            assert getattr(got, attribute, None) == getattr(expected, attribute, None)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(["Content-Type", "content-disposition", "Content-Transfer-Encoding", "To", "X-Other"]),
    value=st.one_of(
        st.text(st.characters(blacklist_categories=("Cs",)), max_size=80),
        st.builds(
            lambda kind, key, param: f"{kind}; {key}={param}",
            st.sampled_from(["text/plain", "multipart/mixed", "application/pdf", "attachment", "inline", "x"]),
            st.sampled_from(["charset", "boundary", "name", "filename", "filename*", "name*0*"]),
            st.text("abc\"';=%*\\ é-", max_size=20),
        ),
    ),
)
def test_any_header_object_is_the_one_policy_default_makes(name: str, value: str) -> None:
    _same_header(name, value)


def test_each_header_class_is_built_once_and_the_memo_is_bounded() -> None:
    factory = POLICY.header_factory
    assert factory["Content-Type"] is factory["content-type"]
    assert factory["X-One"] is factory["X-Two"]  # both the unstructured default
    assert factory["To"] is not factory["Content-Type"]
    for index in range(email_policy._MEMO_ENTRIES + 50):
        POLICY.header_fetch_parse("Content-Type", f"text/plain; charset=x{index}")
    assert email_policy._fetch_parse.cache_info().currsize == email_policy._MEMO_ENTRIES
    long_value = "text/plain; name=" + "a" * email_policy._MEMO_MAX_CHARS
    assert POLICY.header_fetch_parse("Content-Type", long_value) is not POLICY.header_fetch_parse(
        "Content-Type", long_value
    )
    _same_header("Content-Type", long_value)
