"""After too many failed AUTHs from one IP within a window, that IP is turned away for a cool-down.

Counted in the edge's counter store (policy/counters.py): per pod, or across every pod when REDIS_URL is set, so
an attacker gains nothing by spreading guesses over the replicas. The window starts at an IP's first failure.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable

from smtp_edge.policy.counters import Counters
from smtp_edge.smtp import replies

THROTTLED = replies.AUTH_THROTTLED

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_allowlist(cidrs: Iterable[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(c.strip(), strict=False) for c in cidrs if c.strip())


def in_networks(ip: str, networks: tuple[Network, ...]) -> bool:
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(address in network for network in networks)


class AuthFailureThrottle:
    def __init__(
        self,
        counters: Counters,
        *,
        max_failures: int,
        window_seconds: float,
        cooldown_seconds: float,
        exempt: Callable[[str], bool] = lambda ip: False,
    ) -> None:
        self._counters = counters
        self._max_failures = max_failures
        self._window = window_seconds
        self._cooldown = cooldown_seconds
        self._exempt = exempt

    async def blocked(self, ip: str) -> bool:
        if self._exempt(ip):
            return False
        return await self._counters.blocked(f"auth-block:{ip}")

    async def record_failure(self, ip: str) -> bool:
        """Counts a failed AUTH; returns True when this failure puts the IP in cool-down."""
        if self._exempt(ip):
            return False
        if await self._counters.hit(f"auth-fail:{ip}", self._window) < self._max_failures:
            return False
        await self._counters.forget(f"auth-fail:{ip}")
        await self._counters.block(f"auth-block:{ip}", self._cooldown)
        return True

    async def record_success(self, ip: str) -> None:
        await self._counters.forget(f"auth-fail:{ip}")
