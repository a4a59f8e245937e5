"""Messages per window per client IP and per authenticated account, counted when a transaction starts (MAIL FROM,
as Postfix's anvil does): a client over a limit hears 450 before it sends the message, so nothing is forwarded and
the client keeps the message and retries later. 0 turns a limit off.

Transactions are counted, refused ones included: a client that keeps trying while over the limit stays over it
until the window ends (windows are not extended by hits, so it does end).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from smtp_edge.policy.counters import Counters
from smtp_edge.policy.refusal import Refusal
from smtp_edge.smtp import replies

OVER_IP_LIMIT = replies.OVER_IP_RATE
OVER_ACCOUNT_LIMIT = replies.OVER_ACCOUNT_RATE


def account_key(username: str) -> str:
    """Accounts are named in the store by a digest: usernames (often addresses) never appear in Redis."""
    return hashlib.sha256(username.encode("utf-8")).hexdigest()[:32]


def describe_window(seconds: float) -> str:
    if seconds == 60:
        return "minute"
    return f"{seconds:g} seconds"


@dataclass(frozen=True, slots=True)
class RateLimits:
    per_ip: int
    per_account: int
    window_seconds: float


class MessageRateLimiter:
    def __init__(
        self, limits: RateLimits, counters: Counters, *, exempt: Callable[[str], bool] = lambda ip: False
    ) -> None:
        self._limits = limits
        self._counters = counters
        self._exempt = exempt
        self._window = describe_window(limits.window_seconds)

    async def admit_transaction(self, ip: str, username: str | None) -> Refusal | None:
        """Counts one transaction; None when it may go ahead, else the 450 to send (by the first limit over).
        Allow-listed client IPs are neither limited nor counted, for their IP or their account."""
        limits = self._limits
        if self._exempt(ip):
            return None
        if limits.per_ip > 0:
            count = await self._counters.hit(f"rate:ip:{ip}", limits.window_seconds)
            if count > limits.per_ip:
                return Refusal(OVER_IP_LIMIT.format(limit=limits.per_ip, window=self._window), "rate_ip")
        if limits.per_account > 0 and username is not None:
            count = await self._counters.hit(f"rate:account:{account_key(username)}", limits.window_seconds)
            if count > limits.per_account:
                reply = OVER_ACCOUNT_LIMIT.format(limit=limits.per_account, window=self._window)
                return Refusal(reply, "rate_account")
        return None
