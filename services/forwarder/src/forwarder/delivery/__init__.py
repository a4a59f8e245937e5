"""Which recipients of a client's message were already handed to the API, so a resend never sends twice."""

from forwarder.delivery.factory import open_delivery_record
from forwarder.delivery.record import (
    Claim,
    ClaimState,
    DeliveryRecord,
    RecipientKey,
    RecordUnavailable,
)

__all__ = [
    "Claim",
    "ClaimState",
    "DeliveryRecord",
    "RecipientKey",
    "RecordUnavailable",
    "open_delivery_record",
]
