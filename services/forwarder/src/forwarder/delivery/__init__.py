"""Which recipients of a client's message were already handed to the API, so a resend never sends twice."""

from forwarder.delivery.factory import open_delivery_record
from forwarder.delivery.memory import MemoryDeliveryRecord
from forwarder.delivery.record import (
    Claim,
    ClaimState,
    DeliveryRecord,
    RecipientKey,
    RecordUnavailable,
)
from forwarder.delivery.redis_store import RedisDeliveryRecord

__all__ = [
    "Claim",
    "ClaimState",
    "DeliveryRecord",
    "MemoryDeliveryRecord",
    "RecipientKey",
    "RecordUnavailable",
    "RedisDeliveryRecord",
    "open_delivery_record",
]
