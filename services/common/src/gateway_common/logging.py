"""JSON-line logging for every service, so one correlation id can be followed through the logs."""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

# Keys whose values are never written, whatever a caller passes by mistake.
SECRET_KEYS = frozenset({"password", "api_key", "token", "authorization", "body", "content", "data"})


def _redact_secrets(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    for key in SECRET_KEYS.intersection(event):
        event[key] = "[redacted]"
    return event


class _LineWriter:
    """structlog's logger for the services' own events: the rendered line goes straight to the root handler's stream,
    under the handler's lock (the stdlib's lines and these never interleave). The stdlib route cost ~40 us per line
    (two LogRecords, its caller lookup, ProcessorFormatter); this one ~15 us, for the line each service writes per
    message at INFO (docs/performance.md)."""

    def __init__(self, handler: logging.StreamHandler[Any], name: str) -> None:
        self._handler = handler
        self.name = name  # add_logger_name reads it

    def msg(self, line: str) -> None:
        handler = self._handler
        handler.acquire()
        try:
            handler.stream.write(line + "\n")
            handler.flush()
        except (OSError, ValueError):  # a closed or broken stdout: a log line never fails its caller
            pass
        finally:
            handler.release()

    debug = info = warning = warn = error = critical = fatal = exception = msg


def configure_logging(service: str, level: str = "INFO") -> None:
    """Route structlog and the stdlib (aiosmtpd, uvicorn, grpc) through one JSON renderer on stdout: the services'
    own events through structlog alone, other libraries' records through the stdlib's handler."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redact_secrets,
    ]
    rendering: list[Any] = [
        structlog.processors.format_exc_info,
        structlog.processors.EventRenamer("message"),
        structlog.processors.JSONRenderer(),
    ]
    root = logging.getLogger()
    root.setLevel(level.upper())
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *rendering],
        )
    )
    structlog.configure(
        processors=[*shared, *rendering],
        logger_factory=lambda *args: _LineWriter(handler, str(args[0]) if args else ""),
        # Calls below the level return at once. structlog.stdlib.BoundLogger ran the whole chain above (context,
        # timestamp, redaction) for every call and left the level check to the stdlib logger at its end: at
        # WARNING, each service's per-message INFO line cost that for nothing (docs/performance.md).
        wrapper_class=structlog.make_filtering_bound_logger(root.level),
        cache_logger_on_first_use=True,
    )
    root.handlers[:] = [handler]
    structlog.contextvars.bind_contextvars(service=service)
    # aiosmtpd logs every client line at INFO (AUTH lines included): keep it at WARNING.
    logging.getLogger("mail.log").setLevel(max(logging.WARNING, root.level))
    for noisy in ("uvicorn.access", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
