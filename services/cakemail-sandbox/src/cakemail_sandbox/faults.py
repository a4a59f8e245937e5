"""Fault specs per route and the decision, request by request, of which fault applies.

Pure bookkeeping: applying a decision to a connection is `middleware.py`'s job. The RNG is injected so that
probabilistic faults are reproducible (same seed, same sequence of failures).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

RouteName = Literal["auth", "emails", "senders", "logs", "health"]


class FaultSpec(BaseModel):
    """What to do to the requests of one route. Every field is optional; several may be combined."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    latency_ms: float = Field(default=0.0, ge=0)
    error_status: int | None = Field(default=None, ge=400, le=599)
    error_rate: float | None = Field(default=None, ge=0.0, le=1.0)
    retry_after: int = Field(default=1, ge=0)
    drop_connection: bool = False
    hang: bool = False
    accept_then_drop: bool = False
    count: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _rate_needs_status(self) -> Self:
        if self.error_rate is not None and self.error_status is None:
            raise ValueError("error_rate needs error_status")
        return self


FaultTable = dict[RouteName, FaultSpec]
FAULT_TABLE = TypeAdapter(FaultTable)


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """The fault drawn for one request, in the order the middleware applies it."""

    latency_seconds: float = 0.0
    drop_connection: bool = False
    hang: bool = False
    error_status: int | None = None
    retry_after: int = 1
    accept_then_drop: bool = False


@dataclass(slots=True)
class _ActiveFault:
    spec: FaultSpec
    remaining: int | None


class FaultInjector:
    """The active faults; `draw` consumes one unit of `count` per request to the route."""

    def __init__(self, table: FaultTable, rng: random.Random) -> None:
        self._rng = rng
        self._active: dict[RouteName, _ActiveFault] = {}
        self.replace(table)

    def replace(self, table: FaultTable) -> None:
        self._active = {route: _ActiveFault(spec, spec.count) for route, spec in table.items()}

    def clear(self) -> None:
        self._active.clear()

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """The active faults; `count` shows how many requests each still applies to."""
        view: dict[str, dict[str, Any]] = {}
        for route, active in self._active.items():
            spec = active.spec.model_dump(exclude_defaults=True)
            if active.remaining is not None:
                spec["count"] = active.remaining
            view[route] = spec
        return view

    def draw(self, route: RouteName) -> FaultPlan | None:
        active = self._active.get(route)
        if active is None:
            return None
        if active.remaining is not None:
            active.remaining -= 1
            if active.remaining <= 0:
                del self._active[route]
        spec = active.spec
        error_status = None
        if spec.error_status is not None:
            rate = 1.0 if spec.error_rate is None else spec.error_rate
            if self._rng.random() < rate:
                error_status = spec.error_status
        return FaultPlan(
            latency_seconds=spec.latency_ms / 1000.0,
            drop_connection=spec.drop_connection,
            hang=spec.hang,
            error_status=error_status,
            retry_after=spec.retry_after,
            accept_then_drop=spec.accept_then_drop,
        )
