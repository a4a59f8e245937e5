"""Everything one sandbox instance remembers, built by create_app and hung off the app (no module globals)."""

from __future__ import annotations

import asyncio
import functools
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from cakemail_sandbox.activity import ActivityLog
from cakemail_sandbox.config import SandboxSettings
from cakemail_sandbox.faults import FaultInjector
from cakemail_sandbox.metrics import SandboxMetrics
from cakemail_sandbox.oauth import OAuthTokens
from cakemail_sandbox.schemas import OpenApiContract
from cakemail_sandbox.senders import SenderDirectory
from cakemail_sandbox.store import IdempotencyStore, Inbox, Stats
from cakemail_sandbox.tokens import TokenIssuer


@dataclass
class SandboxState:
    settings: SandboxSettings
    tokens: TokenIssuer
    faults: FaultInjector
    idempotency: IdempotencyStore
    oauth: OAuthTokens
    senders: SenderDirectory
    contract: OpenApiContract
    # Wall-clock time (seconds since the epoch) of v2 emails and their activity logs.
    wall_clock: Callable[[], float] = time.time
    inbox: Inbox = field(default_factory=Inbox)
    activity: ActivityLog = field(default_factory=ActivityLog)
    stats: Stats = field(default_factory=Stats)
    metrics: SandboxMetrics = field(default_factory=SandboxMetrics)
    # Set when the server starts shutting down: ends `hang` faults instead of making shutdown wait for them.
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    @classmethod
    def create(
        cls,
        settings: SandboxSettings,
        *,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> SandboxState:
        """`rng` decides error_rate draws (default: seeded from SANDBOX_FAULT_SEED); `clock` drives expiries;
        `wall_clock` dates v2 emails and activity logs."""
        return cls(
            settings=settings,
            tokens=TokenIssuer(settings.accounts, settings.token_expires_in, clock),
            faults=FaultInjector(settings.faults, rng or random.Random(settings.fault_seed)),
            idempotency=IdempotencyStore(settings.idempotency_ttl_seconds, clock),
            oauth=OAuthTokens(
                settings.accounts,
                expires_in=settings.token_expires_in,
                refresh_expires_in=settings.refresh_token_expires_in,
                mfa_code=settings.mfa_code,
                clock=clock,
            ),
            senders=SenderDirectory(settings.accounts),
            contract=_contract(),
            wall_clock=wall_clock,
            inbox=Inbox(settings.max_emails, settings.max_email_bytes),
            activity=ActivityLog(settings.max_emails),
        )

    def reset(self) -> None:
        """Back to the state at startup minus the configured faults: no emails, logs, tokens, idempotency or counts,
        the configured senders only."""
        self.clear_emails()
        self.stats.reset()
        self.faults.clear()
        self.tokens.revoke_all()
        self.oauth.revoke_all()
        self.idempotency.clear()
        self.senders.reset()

    def known_account_ids(self) -> set[int]:
        return {account_id for account in self.settings.accounts for account_id in account.account_ids}

    def clear_emails(self) -> None:
        """No recorded emails, v1 or v2, and no activity logs."""
        self.inbox.clear()
        self.activity.clear()


@functools.cache
def _contract() -> OpenApiContract:
    # Read-only once built, and building it parses the whole document: one per process is enough.
    return OpenApiContract()
