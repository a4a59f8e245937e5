"""Message rate limits per client IP and per account, on in-memory counters with a controlled clock."""

from __future__ import annotations

import pytest

from smtp_edge.policy.counters import MemoryCounters
from smtp_edge.policy.message_rates import MessageRateLimiter, RateLimits, account_key, describe_window


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def limiter(
    clock: Clock, *, per_ip: int = 3, per_account: int = 5, exempt: frozenset[str] = frozenset()
) -> MessageRateLimiter:
    return MessageRateLimiter(
        RateLimits(per_ip=per_ip, per_account=per_account, window_seconds=60),
        MemoryCounters(clock),
        exempt=lambda ip: ip in exempt,
    )


async def test_per_ip_limit_then_the_next_window_passes() -> None:
    clock = Clock()
    rates = limiter(clock)
    for _ in range(3):
        assert await rates.admit_transaction("192.0.2.1", "ann") is None
    refusal = await rates.admit_transaction("192.0.2.1", "ann")
    assert refusal is not None and refusal.policy == "rate_ip"
    assert refusal.reply == "450 4.7.1 Too many messages from your address (3 per minute), try again later"
    assert await rates.admit_transaction("192.0.2.2", "ann") is None  # another address is not affected
    clock.now += 59.9
    assert await rates.admit_transaction("192.0.2.1", "ann") is not None  # refused tries do not extend the window
    clock.now += 0.1
    assert await rates.admit_transaction("192.0.2.1", "ann") is None


async def test_per_account_limit_spans_addresses() -> None:
    clock = Clock()
    rates = limiter(clock)
    for n in range(5):
        assert await rates.admit_transaction(f"192.0.2.{n}", "ann") is None
    refusal = await rates.admit_transaction("192.0.2.99", "ann")
    assert refusal is not None and refusal.policy == "rate_account"
    assert refusal.reply.startswith("450 4.7.1 Too many messages for this account (5 per minute)")
    assert await rates.admit_transaction("192.0.2.99", "bob") is None
    clock.now += 60
    assert await rates.admit_transaction("192.0.2.99", "ann") is None


@pytest.mark.parametrize(("per_ip", "per_account"), [(0, 0), (0, 1000), (1000, 0)])
async def test_zero_turns_a_limit_off(per_ip: int, per_account: int) -> None:
    rates = limiter(Clock(), per_ip=per_ip, per_account=per_account)
    for _ in range(200):
        assert await rates.admit_transaction("192.0.2.1", "ann") is None


async def test_allowlisted_addresses_are_neither_limited_nor_counted() -> None:
    rates = limiter(Clock(), per_ip=1, per_account=1, exempt=frozenset({"192.0.2.1"}))
    for _ in range(10):
        assert await rates.admit_transaction("192.0.2.1", "ann") is None
    assert await rates.admit_transaction("192.0.2.2", "ann") is None  # the account's budget was not used up


def test_accounts_are_keyed_by_digest_and_windows_described() -> None:
    assert account_key("ann@example.com") == account_key("ann@example.com") != account_key("bob@example.com")
    assert "@" not in account_key("ann@example.com") and len(account_key("x")) == 32
    assert (describe_window(60), describe_window(2), describe_window(0.5)) == ("minute", "2 seconds", "0.5 seconds")
