"""A per-process budget of message bytes in flight (`DATA_BYTES_IN_FLIGHT_LIMIT`, docs/configuration.md).

Each message is bounded by `MESSAGE_SIZE_LIMIT`, but the edge holds several times a message's size while it reads,
parses and forwards it (docs/security.md, "Resource exhaustion"), and nothing else bounds how many are in flight.
A message's bytes are reserved from this budget as they arrive (all of its `SIZE=` declaration at once, at DATA)
and given back when its DATA reply is decided. Over the budget the client hears `452 4.3.1` (at MAIL when its
`SIZE=` does not fit what is free, at DATA, or at the end of DATA), a temporary reply: it keeps the message and
retries, nothing is lost.
"""

from __future__ import annotations


class DataBudget:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_use = 0

    @property
    def free(self) -> int:
        return self.limit - self.in_use

    def take(self, size: int) -> bool:
        if size > self.free:
            return False
        self.in_use += size
        return True

    def give_back(self, size: int) -> None:
        self.in_use -= size
        assert self.in_use >= 0, "gave back more than was taken"

    def reservation(self) -> Reservation:
        return Reservation(self)


class Reservation:
    """One message's share: `reserve` up front (a declared size), `admit` each piece as it arrives (taking more
    only past what is reserved), `release` at the end. A refused piece releases everything at once: the message is
    dropped and the rest of it read and discarded without holding the budget."""

    def __init__(self, budget: DataBudget) -> None:
        self._budget = budget
        self.held = 0
        self.used = 0

    def reserve(self, size: int) -> bool:
        if not self._budget.take(size):
            return False
        self.held += size
        return True

    def admit(self, size: int) -> bool:
        self.used += size
        if self.used <= self.held:
            return True
        if self.reserve(self.used - self.held):
            return True
        self.release()
        return False

    def release(self) -> None:
        self._budget.give_back(self.held)
        self.held = 0


def declared_size(mail_options: list[str]) -> int | None:
    """The size a MAIL command declared (RFC 1870 `SIZE=n`; aiosmtpd checked its syntax), if any."""
    for option in mail_options:
        name, _, value = option.partition("=")
        if name.upper() == "SIZE" and value.isdigit():
            return int(value)
    return None
