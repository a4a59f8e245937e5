"""Who a gRPC call acts for: a Cakemail user's credentials (as over SMTP AUTH), or a direct caller's Cakemail access
token for one account (gRPC metadata). Neither secret appears in repr(), so neither reaches a log line."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class PasswordLogin:
    username: str
    password: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class AccessToken:
    token: str = field(repr=False)
    account_id: str


Principal = PasswordLogin | AccessToken
