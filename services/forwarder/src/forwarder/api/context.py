"""What every API call carries explicitly: the correlation id to send and the caller's deadline."""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CallContext:
    request_id: str
    # time.monotonic() value after which no new call may start; None: no deadline (the API client's timeout only)
    deadline: float | None = None

    def remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()
