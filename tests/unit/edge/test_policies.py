"""Admission policies: connection caps, the deny list and the AUTH failure throttle, with a controlled clock."""

from __future__ import annotations

from pathlib import Path

import pytest

from smtp_edge.policy.access_lists import DENIED, AccessListFiles
from smtp_edge.policy.admission import Admission
from smtp_edge.policy.auth_throttle import THROTTLED, AuthFailureThrottle, in_networks, parse_allowlist
from smtp_edge.policy.connection_limits import REFUSED_PER_IP, REFUSED_TOTAL, ConnectionLimiter
from smtp_edge.policy.counters import MemoryCounters
from smtp_edge.smtp.handler import plausible_address


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_per_ip_cap_and_release() -> None:
    limiter = ConnectionLimiter(per_ip=2, total=10)
    assert limiter.admit("10.0.0.1") is None
    assert limiter.admit("10.0.0.1") is None
    assert limiter.admit("10.0.0.1") == REFUSED_PER_IP
    assert limiter.admit("10.0.0.2") is None
    limiter.release("10.0.0.1")
    assert limiter.admit("10.0.0.1") is None
    assert limiter.open_connections == 3


def test_total_cap() -> None:
    limiter = ConnectionLimiter(per_ip=5, total=2)
    assert limiter.admit("a") is None and limiter.admit("b") is None
    assert limiter.admit("c") == REFUSED_TOTAL
    limiter.release("a")
    limiter.release("b")
    assert limiter.open_connections == 0


def throttle(clock: Clock, allow: str = "") -> AuthFailureThrottle:
    allowlist = parse_allowlist([allow])
    return AuthFailureThrottle(
        MemoryCounters(clock),
        max_failures=3,
        window_seconds=60,
        cooldown_seconds=600,
        exempt=lambda ip: in_networks(ip, allowlist),
    )


async def test_failures_in_window_block_for_the_cooldown() -> None:
    clock = Clock()
    t = throttle(clock)
    assert not await t.record_failure("1.2.3.4")
    assert not await t.record_failure("1.2.3.4")
    assert await t.record_failure("1.2.3.4")
    assert await t.blocked("1.2.3.4")
    assert not await t.blocked("1.2.3.5")
    clock.now += 599
    assert await t.blocked("1.2.3.4")
    clock.now += 2
    assert not await t.blocked("1.2.3.4")


async def test_failures_outside_the_window_do_not_add_up() -> None:
    clock = Clock()
    t = throttle(clock)
    for _ in range(5):
        assert not await t.record_failure("1.2.3.4")
        clock.now += 31
    assert not await t.blocked("1.2.3.4")


async def test_success_resets_and_allowlist_is_never_blocked() -> None:
    clock = Clock()
    t = throttle(clock, allow="10.0.0.0/8")
    await t.record_failure("1.2.3.4")
    await t.record_failure("1.2.3.4")
    await t.record_success("1.2.3.4")
    assert not await t.record_failure("1.2.3.4")
    for _ in range(10):
        assert not await t.record_failure("10.1.2.3")
    assert not await t.blocked("10.1.2.3")


async def test_memory_counters_sweep_forgets_old_state() -> None:
    clock = Clock()
    counters = MemoryCounters(clock)
    for key in ("a", "b"):
        await counters.hit(key, 60)
    await counters.block("c", 600)
    clock.now += 10_000
    counters.sweep()
    assert len(counters) == 0


async def test_admission_refuses_throttled_ips_without_taking_a_slot(tmp_path: Path) -> None:
    clock = Clock()
    admission = Admission(ConnectionLimiter(per_ip=5, total=5), throttle(clock), no_lists())
    for _ in range(3):
        await admission.auth_throttle.record_failure("9.9.9.9")
    assert admission.connections.open_connections == 0
    refusal = await admission.admit("9.9.9.9")
    assert refusal is not None and (refusal.reply, refusal.policy) == (THROTTLED, "auth_throttle")
    assert admission.connections.open_connections == 0


async def test_admission_refuses_denied_ips_at_connect(tmp_path: Path) -> None:
    deny = tmp_path / "deny"
    deny.write_text("192.0.2.0/24\n")
    lists = AccessListFiles(deny, None, check_interval=1)
    admission = Admission(ConnectionLimiter(per_ip=5, total=5), throttle(Clock()), lists)
    refusal = await admission.admit("192.0.2.9")
    assert refusal is not None and (refusal.reply, refusal.policy) == (DENIED, "deny_list")
    assert DENIED.startswith("421 4.7.1 ")
    assert admission.connections.open_connections == 0
    assert await admission.admit("192.0.3.9") is None
    assert admission.connections.open_connections == 1


def no_lists() -> AccessListFiles:
    return AccessListFiles(None, None, check_interval=1)


@pytest.mark.parametrize(
    ("address", "ok"),
    [
        ("a@b.test", True),
        ("j\u00f6rg@b\u00fccher.example", True),
        ("no-at-sign", False),
        ("@b.test", False),
        ("a@", False),
        ("a b@c.test", False),
        ("a@c.test\r\n", False),
        ("<a@c.test>", False),
        ("x" * 250 + "@c.test", False),
    ],
)
def test_plausible_address(address: str, ok: bool) -> None:
    assert plausible_address(address) is ok
