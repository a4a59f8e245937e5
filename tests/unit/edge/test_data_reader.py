"""Bulk DATA reading: end-of-data detection across piece boundaries, dot-unstuffing and line limits."""

from __future__ import annotations

import asyncio

import pytest

from smtp_edge.smtp.data_reader import DataProblem, finish, read_data


@pytest.mark.parametrize(
    ("collected", "content"),
    [
        (b"\r\n.\r\n", b""),
        (b"\r\nhello\r\n.\r\n", b"hello\r\n"),
        (b"\r\n..leading dot\r\n.\r\n", b".leading dot\r\n"),
        (b"\r\na\r\n..\r\n...\r\nb\r\n.\r\n", b"a\r\n.\r\n..\r\nb\r\n"),
        (b"\r\n.x\r\n.\r\n", b"x\r\n"),  # RFC 5321 4.5.2: any leading period goes
        (b"\r\nno.dot.here\r\n.\r\n", b"no.dot.here\r\n"),
    ],
)
def test_finish_unstuffs(collected: bytes, content: bytes) -> None:
    outcome = finish(bytearray(collected))
    assert (outcome.content, outcome.problem) == (content, None)


def test_line_length_limit_counts_octets_with_crlf() -> None:
    at_limit = b"\r\n" + b"x" * 998 + b"\r\n.\r\n"
    stuffed_at_limit = b"\r\n." + b"x" * 998 + b"\r\n.\r\n"  # the transparent dot is allowed on top
    over = b"\r\n" + b"x" * 1000 + b"\r\n.\r\n"
    assert finish(bytearray(at_limit)).problem is None
    assert finish(bytearray(stuffed_at_limit)).problem is None
    assert finish(bytearray(over)).problem is DataProblem.LINE_TOO_LONG


async def _read(chunks: list[bytes], limit: int | None = None) -> tuple[bytes, DataProblem | None, bytes]:
    reader = asyncio.StreamReader(limit=1001)
    for chunk in chunks:
        reader.feed_data(chunk)
    reader.feed_eof()
    outcome = await read_data(reader, limit)
    rest = await reader.read()
    return outcome.content, outcome.problem, rest


async def test_end_of_data_split_across_pieces_and_pipelined_rest_kept() -> None:
    content, problem, rest = await _read([b"Subject: x\r\n\r\nbody\r", b"\n", b".", b"\r", b"\nQUIT\r\n"])
    assert (content, problem, rest) == (b"Subject: x\r\n\r\nbody\r\n", None, b"QUIT\r\n")


async def test_empty_message_and_lone_dot_line() -> None:
    assert await _read([b".\r\nNOOP\r\n"]) == (b"", None, b"NOOP\r\n")


async def test_large_message_over_many_pieces() -> None:
    body = b"".join(b"line %d ..\r\n" % i for i in range(200_000))
    content, problem, rest = await _read([body[i : i + 7777] for i in range(0, len(body), 7777)] + [b".\r\n"])
    assert problem is None and rest == b""
    assert content == body


async def test_too_much_data_is_read_to_the_end_and_refused() -> None:
    content, problem, rest = await _read([b"x" * 900 + b"\r\n"] * 100 + [b".\r\nRSET\r\n"], limit=10_000)
    assert (content, problem, rest) == (b"", DataProblem.TOO_MUCH_DATA, b"RSET\r\n")


async def test_a_dropped_connection_is_a_reset() -> None:
    with pytest.raises(ConnectionResetError):
        await _read([b"partial message\r\n"])
