"""The one place that picks the API flavor from the settings: everything else holds a CakemailApi."""

from __future__ import annotations

from forwarder.api.http import HttpTransport
from forwarder.api.interface import CakemailApi
from forwarder.api.v1.client import V1Api
from forwarder.api.v2.client import V2Api, V2Options
from forwarder.config import ForwarderSettings
from forwarder.resilience.pipeline import ApiPipeline


def create_api(settings: ForwarderSettings, pipeline: ApiPipeline) -> CakemailApi:
    transport = HttpTransport.create(
        settings.cakemail_api_url,
        timeout=settings.cakemail_api_timeout_seconds,
        connect_timeout=settings.cakemail_api_connect_timeout_seconds,
        max_connections=settings.max_inflight_api_calls,
        keepalive=settings.cakemail_api_keepalive_seconds,
    )
    if settings.cakemail_api_flavor == "v1":
        return V1Api(transport, pipeline)
    return V2Api(
        transport,
        pipeline,
        V2Options(
            default_api_type=settings.cakemail_email_api_type,
            default_list_id=settings.cakemail_list_id,
            sender_cache_ttl_seconds=settings.sender_cache_ttl_seconds,
            sender_cache_max_entries=settings.sender_cache_max_entries,
            lookup_window_seconds=settings.ambiguous_lookup_window_seconds,
        ),
    )
