"""After too many failed AUTHs from one IP within a window, that IP is turned away for a cool-down."""

from __future__ import annotations

import ipaddress
import time
from collections import deque
from collections.abc import Callable, Iterable

THROTTLED = "421 4.7.0 Too many authentication failures, try again later"

_SWEEP_AT = 10_000

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_allowlist(cidrs: Iterable[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(c.strip(), strict=False) for c in cidrs if c.strip())


class AuthFailureThrottle:
    def __init__(
        self,
        *,
        max_failures: int,
        window_seconds: float,
        cooldown_seconds: float,
        allowlist: tuple[Network, ...] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max_failures = max_failures
        self._window = window_seconds
        self._cooldown = cooldown_seconds
        self._allowlist = allowlist
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._blocked_until: dict[str, float] = {}

    def _allowlisted(self, ip: str) -> bool:
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(address in network for network in self._allowlist)

    def blocked(self, ip: str) -> bool:
        until = self._blocked_until.get(ip)
        if until is None:
            return False
        if self._clock() >= until:
            del self._blocked_until[ip]
            return False
        return True

    def record_failure(self, ip: str) -> bool:
        """Counts a failed AUTH; returns True when this failure puts the IP in cool-down."""
        if self._allowlisted(ip):
            return False
        if len(self._failures) + len(self._blocked_until) > _SWEEP_AT:
            self.sweep()
        now = self._clock()
        recent = self._failures.setdefault(ip, deque())
        recent.append(now)
        while recent and recent[0] <= now - self._window:
            recent.popleft()
        if len(recent) < self._max_failures:
            return False
        del self._failures[ip]
        self._blocked_until[ip] = now + self._cooldown
        return True

    def record_success(self, ip: str) -> None:
        self._failures.pop(ip, None)

    def sweep(self) -> None:
        """Forget expired state so memory stays bounded by recent offenders."""
        now = self._clock()
        for ip in [ip for ip, until in self._blocked_until.items() if until <= now]:
            del self._blocked_until[ip]
        for ip in [ip for ip, times in self._failures.items() if not times or times[-1] <= now - self._window]:
            del self._failures[ip]
