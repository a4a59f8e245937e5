"""JSON log lines with context, and secrets that never reach them whatever a caller passes."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from gateway_common.logging import configure_logging


@pytest.fixture
def lines(capsys: pytest.CaptureFixture[str]) -> Iterator[list[dict[str, object]]]:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    configure_logging("test-service", "INFO")
    structlog.contextvars.bind_contextvars(request_id="req-1")
    log = structlog.get_logger("unit")
    log.info("with secrets", password="hunter2", api_key="k-123", authorization="Bearer x", user="ann")
    logging.getLogger("mail.log").info("aiosmtpd line with AUTH data: should be filtered by level")
    logging.getLogger("other.lib").warning("stdlib record")
    structlog.contextvars.clear_contextvars()
    yield [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    root.handlers[:], root.level = saved[0], saved[1]
    structlog.reset_defaults()


def test_every_line_is_json_with_context(lines: list[dict[str, object]]) -> None:
    first, second = lines
    assert first["message"] == "with secrets" and first["service"] == "test-service"
    assert first["request_id"] == "req-1" and first["level"] == "info" and "timestamp" in first
    assert second["message"] == "stdlib record" and second["logger"] == "other.lib"


def test_secrets_are_redacted(lines: list[dict[str, object]]) -> None:
    text = json.dumps(lines)
    assert "hunter2" not in text and "k-123" not in text and "Bearer x" not in text
    assert lines[0]["password"] == "[redacted]" and lines[0]["user"] == "ann"


def test_aiosmtpd_client_lines_are_not_logged_at_info(lines: list[dict[str, object]]) -> None:
    assert not any("AUTH data" in str(line.get("message")) for line in lines)


def test_calls_below_the_level_do_no_work(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """At WARNING an INFO call returns before the processor chain: nothing reaches the stdlib logger (which used to
    receive the processed event only to drop it), and a WARNING call still writes its line."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    reached: list[object] = []
    try:
        configure_logging("test-service", "WARNING")
        monkeypatch.setattr(logging.Logger, "info", lambda self, *args, **kwargs: reached.append(args))
        log = structlog.get_logger("unit")
        log.info("per message", size=1)
        log.debug("per command")
        log.warning("kept", size=2)
        lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    finally:
        root.handlers[:], root.level = saved[0], saved[1]
        structlog.reset_defaults()
    assert reached == []
    assert [(line["message"], line["level"], line["size"]) for line in lines] == [("kept", "warning", 2)]


def test_own_events_skip_the_stdlib_and_foreign_records_still_come_through(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The services' own events are rendered by structlog and written to the handler's stream directly (no
    LogRecord: the stdlib route cost more than the rendering); other libraries' records go through the handler,
    rendered by the same processors, in the order logged."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    records: list[str] = []
    make_record = logging.Logger.makeRecord

    def counting(self: logging.Logger, *args: object, **kwargs: object) -> logging.LogRecord:
        records.append(self.name)
        return make_record(self, *args, **kwargs)  # type: ignore[arg-type]

    try:
        configure_logging("test-service", "INFO")
        monkeypatch.setattr(logging.Logger, "makeRecord", counting)
        log = structlog.get_logger("unit")
        log.info("own", size=1)
        logging.getLogger("grpc.lib").warning("foreign %s", "record")
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("failed")
        lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    finally:
        root.handlers[:], root.level = saved[0], saved[1]
        structlog.reset_defaults()
    assert records == ["grpc.lib"]
    assert [(line["message"], line["logger"], line["level"]) for line in lines] == [
        ("own", "unit", "info"),
        ("foreign record", "grpc.lib", "warning"),
        ("failed", "unit", "error"),
    ]
    assert lines[0]["service"] == lines[1]["service"] == "test-service" and lines[0]["size"] == 1
    assert "ValueError: boom" in str(lines[2]["exception"])
