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


def configure_logging(service: str, level: str = "INFO") -> None:
    """Route structlog and the stdlib (aiosmtpd, uvicorn, grpc) through one JSON renderer on stdout."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redact_secrets,
    ]
    root = logging.getLogger()
    root.setLevel(level.upper())
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        # Calls below the level return at once. structlog.stdlib.BoundLogger ran the whole chain above (context,
        # timestamp, redaction) for every call and left the level check to the stdlib logger at its end: at
        # WARNING, each service's per-message INFO line cost that for nothing (docs/performance.md).
        wrapper_class=structlog.make_filtering_bound_logger(root.level),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                structlog.processors.EventRenamer("message"),
                structlog.processors.JSONRenderer(),
            ],
        )
    )
    root.handlers[:] = [handler]
    structlog.contextvars.bind_contextvars(service=service)
    # aiosmtpd logs every client line at INFO (AUTH lines included): keep it at WARNING.
    logging.getLogger("mail.log").setLevel(max(logging.WARNING, root.level))
    for noisy in ("uvicorn.access", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
