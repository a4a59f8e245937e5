"""All sandbox configuration, from the environment (prefix SANDBOX_), in one place."""

from __future__ import annotations

from pydantic import AliasChoices, BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from cakemail_sandbox.faults import FaultTable


class Account(BaseModel):
    """A Cakemail account the sandbox knows: what SMTP AUTH credentials resolve to."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    username: str = Field(min_length=1)
    password: str = Field(min_length=1, repr=False)
    account_id: str = Field(min_length=1)
    email: str = Field(min_length=1)


DEMO_ACCOUNT = Account(
    username="demo@example.com",
    password="demo-password",  # noqa: S106 - the documented local demo login
    account_id="acct-demo",
    email="demo@example.com",
)

MIB = 1024 * 1024


class SandboxSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SANDBOX_", case_sensitive=False, extra="ignore", validate_by_name=True, validate_by_alias=True
    )

    host: str = "127.0.0.1"
    port: int = Field(default=8090, ge=0, le=65535)
    # Shared with the other services, hence no SANDBOX_ prefix.
    log_level: str = Field(default="INFO", validation_alias=AliasChoices("LOG_LEVEL", "log_level"))

    # JSON list of {"username", "password", "account_id", "email"}.
    accounts: list[Account] = Field(default_factory=lambda: [DEMO_ACCOUNT], min_length=1)
    # JSON {"auth": {...}, "emails": {...}, "health": {...}}: faults active from startup (see faults.py).
    faults: FaultTable = Field(default_factory=dict)
    # Seed of the RNG that decides error_rate draws; unset means a fresh random seed.
    fault_seed: int | None = None

    token_expires_in: int = Field(default=900, gt=0)
    idempotency_ttl_seconds: float = Field(default=24 * 3600, gt=0)
    max_request_bytes: int = Field(default=35 * MIB, gt=0)
    max_attachment_bytes: int = Field(default=10 * MIB, gt=0)
    # Upper bound of a `hang` fault, so a forgotten fault cannot pin a connection forever.
    hang_max_seconds: float = Field(default=120.0, gt=0)
    # How long shutdown waits for requests in flight before cancelling them.
    shutdown_grace_seconds: int = Field(default=5, ge=0)
