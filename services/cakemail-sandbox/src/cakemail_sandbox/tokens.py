"""Accounts and the opaque api keys issued for them, with their expiry."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from cakemail_sandbox.config import Account


@dataclass(frozen=True, slots=True)
class IssuedToken:
    api_key: str
    account: Account
    expires_in: int


class TokenIssuer:
    """Checks credentials, issues random api keys and resolves them back to their account until they expire."""

    def __init__(self, accounts: Iterable[Account], expires_in: int, clock: Callable[[], float]) -> None:
        self._accounts = {account.username: account for account in accounts}
        self._expires_in = expires_in
        self._clock = clock
        self._tokens: dict[str, tuple[float, Account]] = {}

    def validate(self, username: str, password: str) -> IssuedToken | None:
        account = self._accounts.get(username)
        # Compare even for an unknown user, so the answer time does not tell which usernames exist.
        expected = account.password if account is not None else secrets.token_hex(16)
        if not hmac.compare_digest(password.encode(), expected.encode()) or account is None:
            return None
        now = self._clock()
        self._prune(now)
        api_key = secrets.token_urlsafe(32)
        self._tokens[api_key] = (now + self._expires_in, account)
        return IssuedToken(api_key=api_key, account=account, expires_in=self._expires_in)

    def resolve(self, api_key: str) -> Account | None:
        found = self._tokens.get(api_key)
        if found is None:
            return None
        expires_at, account = found
        if self._clock() >= expires_at:
            del self._tokens[api_key]
            return None
        return account

    def revoke_all(self) -> int:
        revoked = len(self._tokens)
        self._tokens.clear()
        return revoked

    def _prune(self, now: float) -> None:
        # One lifetime for all and a monotonic clock: insertion order is expiry order.
        expired = []
        for api_key, (expires_at, _) in self._tokens.items():
            if now < expires_at:
                break
            expired.append(api_key)
        for api_key in expired:
            del self._tokens[api_key]
