"""One correlation id travels from the SMTP session through gRPC metadata to the Cakemail API call."""

from __future__ import annotations

import uuid
from contextvars import ContextVar

GRPC_METADATA_KEY = "x-request-id"
HTTP_HEADER = "X-Request-Id"


def new_correlation_id() -> str:
    return uuid.uuid4().hex


# The id of the request being served, for code that runs on its behalf (including tasks it starts).
current_request_id: ContextVar[str] = ContextVar("current_request_id", default="")
