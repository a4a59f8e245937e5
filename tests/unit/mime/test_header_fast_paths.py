"""The usual address headers and plain Subject-like text skip policy.default's parser (gateway_mime.headers): for every
header value, what parse_addresses and decode_unstructured give (values and defects) must be what they give with
policy.default's parser alone."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gateway_mime import headers
from gateway_mime.headers import Defects, decode_unstructured, parse_addresses, simple_addresses

ATEXT = "abcxyzABCXYZ0189!#$%&'*+/=?^_`{|}~-"
atoms = st.text(alphabet=ATEXT, min_size=1, max_size=6)
dot_atoms = st.lists(atoms, min_size=1, max_size=3).map(".".join)
addr_specs = st.builds(lambda local, domain: f"{local}@{domain}", dot_atoms, dot_atoms)
spaces = st.text(alphabet=" \t", max_size=2)
phrases = st.lists(atoms, min_size=1, max_size=3).flatmap(
    lambda words: st.lists(
        st.text(alphabet=" \t", min_size=1, max_size=2), min_size=len(words), max_size=len(words)
    ).map(lambda gaps: "".join(gap + word for gap, word in zip(gaps, words, strict=True)).lstrip())
)
mailboxes = st.one_of(
    addr_specs, st.builds(lambda name, gap, addr: f"{name}{gap}<{addr}>", phrases, spaces, addr_specs)
)
# Headers of the fast path's shape: comma-separated mailboxes with spaces around ("=?" would start an encoded word).
simple_headers = (
    st.lists(st.builds(lambda a, m, b: a + m + b, spaces, mailboxes, spaces), min_size=1, max_size=4)
    .map(",".join)
    .filter(lambda value: "=?" not in value)
)
# Near misses: the same pieces mixed with what the fast path must leave to policy.default (quotes, comments, groups,
# encoded words, route syntax, dots in names, empty entries, non-ASCII, other whitespace, stray brackets).
ODD = ['"', "(", ")", "\\", ":", ";", "[", "]", "<", ">", "@", ".", ",", "=?", "?=", "é", "\x0b", "\u2003"]
ODD += ["=?utf-8?q?a?="]
near_misses = st.lists(
    st.one_of(mailboxes, atoms, spaces, st.sampled_from(ODD), st.just(", ")), min_size=1, max_size=8
).map("".join)


def _parsed(value: str) -> tuple[list[object], tuple[str, ...]]:
    defects = Defects()
    return list(parse_addresses(value, defects)), defects.names()


def _as_policy_default_alone(value: str, monkeypatch: pytest.MonkeyPatch) -> tuple[list[object], tuple[str, ...]]:
    with monkeypatch.context() as patch:
        patch.setattr(headers, "simple_addresses", lambda text: None)
        return _parsed(value)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=simple_headers)
@example(value="bench@example.com")
@example(value="Alice   Smith\t <alice.smith@example.com> , b@c.d")
def test_usual_headers_take_the_fast_path_and_read_alike(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert simple_addresses(value) is not None
    assert _parsed(value) == _as_policy_default_alone(value, monkeypatch)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.one_of(near_misses, simple_headers))
@example(value='"Alice" <a@b.c>')
@example(value="a@b.c (comment)")
@example(value="=?utf-8?q?A?= <a@b.c>")
@example(value="undisclosed-recipients:;")
@example(value="J. Smith <a@b.c>")
@example(value="a@b.c,")
@example(value="a..b@c.d")
def test_any_header_reads_as_policy_default_reads_it(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert _parsed(value) == _as_policy_default_alone(value, monkeypatch)


def test_the_fast_path_leaves_other_shapes_to_policy_default() -> None:
    for value in ['"Alice" <a@b.c>', "a@b.c (x)", "=?utf-8?q?A?= <a@b.c>", "g: a@b.c;", "J. Smith <a@b.c>", "é@b.c"]:
        assert simple_addresses(value) is None, value
    assert simple_addresses(" Alice  Smith <a@b.c>, d@e.f ") == [("Alice  Smith", "a@b.c"), ("", "d@e.f")]


def _unstructured(value: str) -> tuple[str, tuple[str, ...]]:
    defects = Defects()
    return decode_unstructured(value, defects), defects.names()


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    value=st.one_of(
        st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30),
        st.lists(
            st.sampled_from(
                ["a", " ", "\t", "=?", "?=", "=?utf-8?q?caf=C3=A9?=", "é", "\x00", "\udce9", "\r\n ", "\x7f"]
            )
        ).map("".join),
    )
)
@example(value="small 0f3a")
@example(value="  leading and trailing\t ")
@example(value="=?utf-8?q?A?= b")
def test_unstructured_text_reads_as_policy_default_reads_it(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    ours = _unstructured(value)
    with monkeypatch.context() as patch:
        patch.setattr(headers, "_PLAIN_TEXT", re.compile("(?!)"))  # never plain: every value to policy.default
        assert ours == _unstructured(value)
