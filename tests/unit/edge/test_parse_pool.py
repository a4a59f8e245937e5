"""The parse pool: its settings, and a parse in a real worker process that gives what the loop's parse gives."""

from __future__ import annotations

import os
from email.message import EmailMessage

import pytest

from gateway_mime import AttachmentTooLarge, MessageRejected
from gateway_mime.submission import read_submission
from smtp_edge.config import EdgeSettings
from smtp_edge.smtp.parse_pool import ParsePool


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
