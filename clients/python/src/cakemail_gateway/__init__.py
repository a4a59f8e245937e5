"""Typed client for the Cakemail SMTP Gateway's gRPC API (cakemail.gateway.v1.ForwarderService).

with GatewayClient("127.0.0.1:50051", username=..., password=...) as client:
    result = client.send(message, sender="app@example.com", recipients=["bob@example.net"])
"""

from cakemail_gateway._core import Account, RecipientResult, RetryPolicy, SendResult
from cakemail_gateway.client import AsyncGatewayClient, GatewayClient, TlsConfig
from cakemail_gateway.errors import (
    DeadlineExceeded,
    ErrorDetails,
    FieldViolation,
    GatewayError,
    InvalidCredentials,
    InvalidRequest,
    MessageRefused,
    MessageTooLarge,
    PermissionDenied,
    PreconditionViolation,
    RateLimited,
    RecipientsDeferred,
    SenderNotConfirmed,
    TemporaryError,
)

__all__ = [
    "Account",
    "AsyncGatewayClient",
    "DeadlineExceeded",
    "ErrorDetails",
    "FieldViolation",
    "GatewayClient",
    "GatewayError",
    "InvalidCredentials",
    "InvalidRequest",
    "MessageRefused",
    "MessageTooLarge",
    "PermissionDenied",
    "PreconditionViolation",
    "RateLimited",
    "RecipientResult",
    "RecipientsDeferred",
    "RetryPolicy",
    "SendResult",
    "SenderNotConfirmed",
    "TemporaryError",
    "TlsConfig",
]
