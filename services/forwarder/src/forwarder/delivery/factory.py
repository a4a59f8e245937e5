"""The one place that picks the delivery record's backend from the settings."""

from __future__ import annotations

from forwarder.config import ForwarderSettings
from forwarder.delivery.memory import MemoryDeliveryRecord
from forwarder.delivery.record import DeliveryRecord
from forwarder.delivery.redis_store import RedisDeliveryRecord


def open_delivery_record(settings: ForwarderSettings) -> DeliveryRecord:
    """Redis when REDIS_URL is set (no connection yet: call check() to probe it), else process memory."""
    if settings.redis_url is not None:
        return RedisDeliveryRecord.from_url(
            settings.redis_url.get_secret_value(),
            retention_seconds=settings.delivery_record_retention_seconds,
            timeout_seconds=settings.redis_timeout_seconds,
        )
    return MemoryDeliveryRecord(
        retention_seconds=settings.delivery_record_retention_seconds,
        max_entries=settings.delivery_record_max_entries,
    )
