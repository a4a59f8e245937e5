"""One correlation id travels from the SMTP session through gRPC metadata to the Cakemail API call."""

from __future__ import annotations

import uuid

GRPC_METADATA_KEY = "x-request-id"
HTTP_HEADER = "X-Request-Id"


def new_correlation_id() -> str:
    return uuid.uuid4().hex
