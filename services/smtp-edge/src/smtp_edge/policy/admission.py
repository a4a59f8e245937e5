"""The policies consulted when a client connects, grouped so the protocol gets one object."""

from __future__ import annotations

from dataclasses import dataclass

from smtp_edge.policy.auth_throttle import THROTTLED, AuthFailureThrottle
from smtp_edge.policy.connection_limits import ConnectionLimiter


@dataclass(frozen=True, slots=True)
class Admission:
    connections: ConnectionLimiter
    auth_throttle: AuthFailureThrottle

    def admit(self, ip: str) -> str | None:
        """None when the client may proceed (a connection slot is then taken), else the 421 to send."""
        if self.auth_throttle.blocked(ip):
            return THROTTLED
        return self.connections.admit(ip)

    def release(self, ip: str) -> None:
        self.connections.release(ip)
