"""The policies consulted when a client connects, grouped so the protocol gets one object."""

from __future__ import annotations

from dataclasses import dataclass

from smtp_edge.policy.access_lists import DENIED, Access, AccessListFiles
from smtp_edge.policy.auth_throttle import THROTTLED, AuthFailureThrottle
from smtp_edge.policy.connection_limits import ConnectionLimiter
from smtp_edge.policy.refusal import Refusal


@dataclass(frozen=True, slots=True)
class Admission:
    connections: ConnectionLimiter
    auth_throttle: AuthFailureThrottle
    access: AccessListFiles

    async def admit(self, ip: str) -> Refusal | None:
        """None when the client may proceed (a connection slot is then taken), else the 421 to send."""
        if self.access.check(ip) is Access.DENIED:
            return Refusal(DENIED, "deny_list")
        if await self.auth_throttle.blocked(ip):
            return Refusal(THROTTLED, "auth_throttle")
        refused = self.connections.admit(ip)
        return None if refused is None else Refusal(refused, "connections")

    def release(self, ip: str) -> None:
        self.connections.release(ip)
