"""The MIME core under hostile bytes: atheris (coverage-guided, seeded with tests/data/mime) for a bounded time, and
hypothesis mutating corpus messages. parse_message may refuse (MessageRejected) but never raise anything else, never
blow its output up beyond the input (mime_bounds.py), and never take seconds."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway_mime.parser import parse_message
from tests.security import mime_bounds
from tests.security.conftest import fuzz_derandomized, fuzz_examples

ROOT = Path(__file__).resolve().parents[2]
SEEDS = mime_bounds.corpus()
# make test: a fixed seed and a fixed number of runs, so the suite is deterministic (a new finding fails it for
# everyone, not at random); make fuzz: FUZZ_SECONDS of random exploration.
ATHERIS_BUDGET = (
    [f"-max_total_time={os.environ['FUZZ_SECONDS']}"]
    if os.environ.get("FUZZ_SECONDS")
    else ["-runs=2500", "-seed=20261201"]
)


@pytest.mark.timeout(0)  # bounded by the subprocess timeout
@pytest.mark.skipif(importlib.util.find_spec("atheris") is None, reason="atheris has no wheel for this platform")
def test_atheris_finds_nothing_in_a_bounded_run(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "tests.security.mime_atheris", *ATHERIS_BUDGET],
        cwd=ROOT,
        capture_output=True,
        timeout=int(os.environ.get("FUZZ_SECONDS") or 60) + 120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    output = run.stderr.decode(errors="replace")
    assert run.returncode == 0, output[-4000:]
    assert "stat::number_of_executed_units" in output  # it ran, rather than failing to start


@st.composite
def mutated_messages(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(data)))
        kind = draw(st.sampled_from(["flip", "insert", "delete", "duplicate", "splice"]))
        if kind == "flip" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif kind == "insert":
            snippet = draw(
                st.sampled_from(
                    [b"\r\n--", b"boundary=", b"Content-Type: multipart/mixed; boundary=X\r\n", b"=?utf-8?b?",
                     b"Content-Transfer-Encoding: base64\r\n", b"\r\n\r\n", b"\x00", b"\xff\xfe", b"=\r\n", b"?="]
                )
            )  # fmt: skip
            data[at:at] = snippet
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 64))]
        elif kind == "duplicate":
            chunk = bytes(data[at : at + draw(st.integers(1, 256))])
            data[at:at] = chunk * draw(st.integers(1, 20))
        else:
            other = draw(st.sampled_from(SEEDS))
            data[at:] = other[draw(st.integers(0, len(other))) :]
    return bytes(data)


@settings(
    max_examples=fuzz_examples(300),
    deadline=None,
    derandomize=fuzz_derandomized(),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(raw=mutated_messages())
def test_mutated_corpus_messages(raw: bytes) -> None:
    started = time.process_time()
    mime_bounds.check(raw)
    # A hang detector, not a speed target (those live in bench/): a corpus-sized message parses in milliseconds.
    assert time.process_time() - started < 5


def test_the_bounds_catch_an_amplifying_parser() -> None:
    """check() is not vacuous: an output larger than EXPANSION x input is refused."""
    small = b"From: a@example.com\r\n\r\nhi\r\n"
    parsed = parse_message(small)
    assert mime_bounds.output_size(parsed) <= mime_bounds.EXPANSION * len(small) + mime_bounds.SLACK
    inflated = parsed.__class__(**{**{f: getattr(parsed, f) for f in parsed.__slots__}, "text_body": "x" * 10**5})
    assert mime_bounds.output_size(inflated) > mime_bounds.EXPANSION * len(small) + mime_bounds.SLACK


# Found by this fuzzer (docs/security.md, "Defects the fuzzers found"): the MIME core turned decoded text back into
# bytes with .encode("ascii", "surrogateescape"), which raised UnicodeEncodeError once the stdlib's get_payload() had
# decoded an 8-bit body with its charset; the edge answered 451 4.3.0 to a message that could never succeed. Now the
# parser reads bodies as received, and these messages are forwarded faithfully.
@pytest.mark.parametrize(
    ("raw", "text_body", "attachments"),
    [
        pytest.param(
            b"From: a@example.com\r\nContent-Type: multipart/mixed\r\n\r\n"
            b"--X\r\nContent-Type: text/plain\r\n\r\nh\xc3\xa9\r\n"
            b"--X--\r\n",
            "h\u00e9",
            [],
            id="8-bit text in a multipart without a boundary parameter",
        ),
        pytest.param(
            b"From: a@example.com\r\nContent-Type: multipart/mixed\r\n\r\n"
            b"--X\r\nContent-ID: <\xef>\r\n\r\nhi\r\n--X--\r\n",
            "hi",
            [],
            id="8-bit header in a multipart without a boundary parameter",
        ),
        pytest.param(
            b"From: a@example.com\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            b"aGk\xc3\xa9=\r\n",
            "hi",
            [],
            id="8-bit bytes in a base64 body (skipped like any junk)",
        ),
        pytest.param(
            b"From: a@example.com\r\nContent-Type: multipart/mixed; boundary=O\r\n\r\n"
            b"--O\r\nContent-Type: message/rfc822\r\n\r\n"
            b"Subject: inner\r\nContent-Type: multipart/mixed\r\n\r\nh\xff\r\n--O--\r\n",
            "",
            [b"Subject: inner\r\nContent-Type: multipart/mixed\r\n\r\nh\xff\r\n"],
            id="8-bit body of a boundary-less multipart inside an attached message",
        ),
    ],
)
def test_8bit_bytes_where_ascii_is_expected(raw: bytes, text_body: str, attachments: list[bytes]) -> None:
    parsed = mime_bounds.check(raw)
    assert parsed is not None
    assert parsed.text_body == text_body
    assert [a.data for a in parsed.attachments] == attachments


def test_a_nul_in_the_charset_is_ignored() -> None:
    """Found by this fuzzer: the stdlib's get_payload() raised ValueError("embedded null character") on such a
    charset. The charset is unknown (a defect is noted) and the 8-bit body is read as UTF-8, like any other."""
    parsed = mime_bounds.check(
        b"From: a@example.com\r\nContent-Type: text/plain; charset=ut\x00f-8\r\n\r\nh\xc3\xa9\r\n"
    )
    assert parsed is not None
    assert parsed.text_body == "h\u00e9\n"
    assert "UnknownCharsetDefect" in parsed.defects
