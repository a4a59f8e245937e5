"""Everything one sandbox instance remembers, built by create_app and hung off the app (no module globals)."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from cakemail_sandbox.config import SandboxSettings
from cakemail_sandbox.faults import FaultInjector
from cakemail_sandbox.store import IdempotencyStore, Inbox, Stats
from cakemail_sandbox.tokens import TokenIssuer


@dataclass
class SandboxState:
    settings: SandboxSettings
    tokens: TokenIssuer
    faults: FaultInjector
    idempotency: IdempotencyStore
    inbox: Inbox = field(default_factory=Inbox)
    stats: Stats = field(default_factory=Stats)
    # Set when the server starts shutting down: ends `hang` faults instead of making shutdown wait for them.
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    @classmethod
    def create(
        cls,
        settings: SandboxSettings,
        *,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> SandboxState:
        """`rng` decides error_rate draws (default: seeded from SANDBOX_FAULT_SEED); `clock` drives expiries."""
        return cls(
            settings=settings,
            tokens=TokenIssuer(settings.accounts, settings.token_expires_in, clock),
            faults=FaultInjector(settings.faults, rng or random.Random(settings.fault_seed)),
            idempotency=IdempotencyStore(settings.idempotency_ttl_seconds, clock),
        )

    def reset(self) -> None:
        """Back to the state at startup minus the configured faults: no emails, tokens, idempotency or counts."""
        self.inbox.clear()
        self.stats.reset()
        self.faults.clear()
        self.tokens.revoke_all()
        self.idempotency.clear()
