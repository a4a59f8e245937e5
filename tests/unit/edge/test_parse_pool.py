"""The parse pool: its settings, and a parse in a real worker process that gives what the loop's parse gives."""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import os
import tracemalloc
from collections.abc import Callable
from email.message import EmailMessage

import pytest

from gateway_mime import AttachmentTooLarge, MessageRejected
from gateway_mime.submission import read_submission
from smtp_edge.config import EdgeSettings
from smtp_edge.smtp.parse_pool import LET_GO_BYTES, ParsePool, parse_in_worker


def test_the_parse_pool_settings_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = EdgeSettings()
    assert (defaults.parse_processes, defaults.parse_in_process_bytes) == (1, 8 * 1024)
    monkeypatch.setenv("PARSE_PROCESSES", "2")
    monkeypatch.setenv("PARSE_IN_PROCESS_BYTES", "0")
    assert (EdgeSettings().parse_processes, EdgeSettings().parse_in_process_bytes) == (2, 0)
    monkeypatch.setenv("PARSE_PROCESSES", "-1")
    with pytest.raises(ValueError, match="parse_processes"):
        EdgeSettings()


def test_a_pool_needs_a_process() -> None:
    with pytest.raises(ValueError, match="at least one process"):
        ParsePool(0)


def _message() -> bytes:
    message = EmailMessage()
    message["From"] = "Ann <ann@example.com>"
    message["To"] = "bob@example.net"
    message["Subject"] = "=?utf-8?q?r=C3=A9sum=C3=A9?="  # no Message-ID: one is derived from the identity
    message.set_content("see attached\n")
    message.add_alternative("<p>see attached</p>", subtype="html")
    message.add_attachment(os.urandom(64 * 1024), maintype="application", subtype="pdf", filename="cv.pdf")
    return message.as_bytes()


async def test_a_worker_parses_exactly_as_the_loop_does_and_refusals_cross_intact() -> None:
    raw = _message()
    pool = ParsePool(1)
    await pool.start()
    try:
        parsed, identity, pid = await pool.parse(
            raw, "ann@example.com", max_attachment_bytes=1 << 20, message_id_domain="edge.test"
        )
        assert pid != os.getpid()
        assert (parsed, identity) == read_submission(
            raw, "ann@example.com", max_attachment_bytes=1 << 20, message_id_domain="edge.test"
        )
        assert parsed.message_id.endswith("@edge.test>")
        with pytest.raises(AttachmentTooLarge) as too_large:
            await pool.parse(raw, "", max_attachment_bytes=1000, message_id_domain="edge.test")
        assert "cv.pdf" in too_large.value.reason
        assert isinstance(too_large.value, MessageRejected)
    finally:
        await pool.close()


async def test_workers_run_below_the_loops_cpu_priority() -> None:
    pool = ParsePool(1, nice=7)
    await pool.start()
    try:
        [pid] = await pool.worker_pids()
        assert os.getpriority(os.PRIO_PROCESS, pid) == min(os.getpriority(os.PRIO_PROCESS, 0) + 7, 19)
    finally:
        await pool.close()


Held = concurrent.futures.Future[object]


class _HeldExecutor(concurrent.futures.Executor):
    """Records each call and answers it only when the test says so."""

    def __init__(self) -> None:
        self.calls: list[tuple[Callable[..., object], Held]] = []

    def submit(self, fn: Callable[..., object], /, *args: object, **kwargs: object) -> Held:
        future: Held = concurrent.futures.Future()
        self.calls.append((fn, future))
        return future

    def unanswered(self, fn: Callable[..., object]) -> int:
        return sum(1 for f, future in self.calls if f is fn and not future.done())


async def _turns() -> None:
    """A few turns of the event loop (no time passes): an answer reaches its parse, which frees its worker for the
    next parse waiting, which hands its message over."""
    for _ in range(10):
        await asyncio.sleep(0)


async def test_a_message_is_handed_over_only_when_a_worker_is_free_and_let_go_of_once_it_crossed() -> None:
    """A queued call is a pickled copy of its message held in the edge, and the queue's feeder thread keeps the last
    one sent until another call replaces it (docs/performance.md, "Edge memory per large message")."""
    pool = ParsePool(2)
    await pool.close()  # never started: its workers are not needed here
    held = _HeldExecutor()
    pool._executor = held  # type: ignore[assignment]
    sizes = [LET_GO_BYTES, 10, LET_GO_BYTES + 1, LET_GO_BYTES - 1, LET_GO_BYTES]
    parses = [
        asyncio.ensure_future(pool.parse(b"x" * n, "", max_attachment_bytes=None, message_id_domain="edge.test"))
        for n in sizes
    ]
    for answered in range(len(sizes)):
        await _turns()
        assert held.unanswered(parse_in_worker) == min(2, len(sizes) - answered)  # never more than the workers
        first = next(future for fn, future in held.calls if fn is parse_in_worker and not future.done())
        first.set_result(("parsed", "identity", 1))
    await _turns()
    assert [await p for p in parses] == [("parsed", "identity", 1)] * len(sizes)
    # A large message's call is followed at once by one that carries nothing; a small one's is not.
    kinds = ["parse" if fn is parse_in_worker else "nothing" for fn, _ in held.calls]
    assert kinds == ["parse", "nothing", "parse", "parse", "nothing", "parse", "parse", "nothing"]


async def test_the_edge_keeps_no_copy_of_a_parsed_message() -> None:
    raw = _message() + b"x" * (4 << 20)  # a 4 MiB epilogue: big enough to stand out of what else is traced
    pool = ParsePool(1)
    await pool.start()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        message = bytes(raw)  # allocated while traced: its copies in this process are too
        parsed = await pool.parse(message, "", max_attachment_bytes=None, message_id_domain="edge.test")
        assert parsed[0].subject == "résumé"
        del message, parsed
        await pool.settled()
        gc.collect()
        assert tracemalloc.get_traced_memory()[0] - before < len(raw) // 4
    finally:
        tracemalloc.stop()
        await pool.close()
