"""What a policy says when it turns a client away."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Refusal:
    reply: str
    policy: str  # the smtp_policy_refusals_total label: deny_list, connections, auth_throttle, rate_ip, rate_account
