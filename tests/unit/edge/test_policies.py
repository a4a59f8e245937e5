"""Admission policies: connection caps and the AUTH failure throttle, with a controlled clock."""

from __future__ import annotations

import pytest

from smtp_edge.policy.admission import Admission
from smtp_edge.policy.auth_throttle import THROTTLED, AuthFailureThrottle, parse_allowlist
from smtp_edge.policy.connection_limits import REFUSED_PER_IP, REFUSED_TOTAL, ConnectionLimiter
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
    return AuthFailureThrottle(
        max_failures=3, window_seconds=60, cooldown_seconds=600, allowlist=parse_allowlist([allow]), clock=clock
    )


def test_failures_in_window_block_for_the_cooldown() -> None:
    clock = Clock()
    t = throttle(clock)
    assert not t.record_failure("1.2.3.4")
    assert not t.record_failure("1.2.3.4")
    assert t.record_failure("1.2.3.4")
    assert t.blocked("1.2.3.4")
    assert not t.blocked("1.2.3.5")
    clock.now += 599
    assert t.blocked("1.2.3.4")
    clock.now += 2
    assert not t.blocked("1.2.3.4")


def test_failures_outside_the_window_do_not_add_up() -> None:
    clock = Clock()
    t = throttle(clock)
    for _ in range(5):
        assert not t.record_failure("1.2.3.4")
        clock.now += 31
    assert not t.blocked("1.2.3.4")


def test_success_resets_and_allowlist_is_never_blocked() -> None:
    clock = Clock()
    t = throttle(clock, allow="10.0.0.0/8")
    t.record_failure("1.2.3.4")
    t.record_failure("1.2.3.4")
    t.record_success("1.2.3.4")
    assert not t.record_failure("1.2.3.4")
    for _ in range(10):
        assert not t.record_failure("10.1.2.3")
    assert not t.blocked("10.1.2.3")


def test_sweep_forgets_old_state() -> None:
    clock = Clock()
    t = throttle(clock)
    for ip in ("a", "b"):
        t.record_failure(ip)
    for _ in range(3):
        t.record_failure("c")
    clock.now += 10_000
    t.sweep()
    assert t._failures == {} and t._blocked_until == {}


def test_admission_refuses_throttled_ips_without_taking_a_slot() -> None:
    clock = Clock()
    admission = Admission(ConnectionLimiter(per_ip=5, total=5), throttle(clock))
    for _ in range(3):
        admission.auth_throttle.record_failure("9.9.9.9")
    assert admission.admit("9.9.9.9") == THROTTLED
    assert admission.connections.open_connections == 0


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
