"""All forwarder configuration, from the environment, in one place."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ForwarderSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    grpc_host: str = "127.0.0.1"
    grpc_port: int = 50051
    http_host: str = "127.0.0.1"
    http_port: int = 8081
    log_level: str = "INFO"

    cakemail_api_url: str = "http://127.0.0.1:8090"
    cakemail_api_timeout_seconds: float = Field(default=20.0, gt=0)
    cakemail_api_connect_timeout_seconds: float = Field(default=3.0, gt=0)

    token_cache_ttl_seconds: float = Field(default=900.0, gt=0)
    token_cache_max_entries: int = Field(default=10_000, gt=0)
    max_inflight_api_calls: int = Field(default=200, gt=0)

    # A message the forwarder will assemble at most (the edge enforces the SMTP-level limit first).
    message_size_limit: int = Field(default=26_214_400, gt=0)
    # The largest gRPC message accepted: frames are at most 1 MiB of content plus metadata.
    grpc_max_receive_message_bytes: int = Field(default=4 * 1024 * 1024, gt=0)
    shutdown_grace_seconds: float = Field(default=25.0, ge=0)
