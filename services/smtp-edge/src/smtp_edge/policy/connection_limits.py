"""Caps on concurrent connections, per client IP and per edge instance, checked before the greeting."""

from __future__ import annotations

from collections import Counter

from smtp_edge.smtp import replies

REFUSED_PER_IP = replies.TOO_MANY_CONNECTIONS_FROM_IP
REFUSED_TOTAL = replies.TOO_MANY_CONNECTIONS


class ConnectionLimiter:
    def __init__(self, *, per_ip: int, total: int) -> None:
        self._per_ip = per_ip
        self._total = total
        self._open: Counter[str] = Counter()

    @property
    def open_connections(self) -> int:
        return self._open.total()

    def admit(self, ip: str) -> str | None:
        """Takes a slot and returns None, or returns the refusal reply (and takes nothing)."""
        if self._open.total() >= self._total:
            return REFUSED_TOTAL
        if self._open[ip] >= self._per_ip:
            return REFUSED_PER_IP
        self._open[ip] += 1
        return None

    def release(self, ip: str) -> None:
        self._open[ip] -= 1
        if self._open[ip] <= 0:
            del self._open[ip]
