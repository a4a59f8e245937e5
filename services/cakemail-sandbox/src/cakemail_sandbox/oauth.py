"""The v2 API's OAuth2 tokens: access tokens that expire, one-use refresh tokens, MFA challenges.

Separate from the v1 api keys (tokens.py): a v1 key is no bearer token on v2 and the other way round, and a refresh
token is never an access token.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from cakemail_sandbox.config import Account

# How long an MFA challenge may be answered.
CHALLENGE_SECONDS = 300.0


@dataclass(frozen=True, slots=True)
class Grant:
    """Who a token speaks for: the user, and the account used when a request names none."""

    account: Account
    default_account_id: int

    @property
    def account_ids(self) -> tuple[int, ...]:
        return self.account.account_ids


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    grant: Grant

    def to_json(self) -> dict[str, object]:
        return {
            "access_token": self.access_token,
            "token_type": "bearer",
            "expires_in": self.expires_in,
            "refresh_token": self.refresh_token,
            "accounts": list(self.grant.account_ids),
        }


@dataclass(frozen=True, slots=True)
class _Issued:
    expires_at: float
    grant: Grant
    # For a refresh token: the lifetime of the access tokens it renews.
    expires_in: int = 0


class OAuthTokens:
    """Password check, token pairs, refresh (each refresh token works once), MFA challenges."""

    def __init__(
        self,
        accounts: Iterable[Account],
        *,
        expires_in: int,
        refresh_expires_in: int,
        mfa_code: str,
        clock: Callable[[], float],
    ) -> None:
        self._accounts = {account.username: account for account in accounts}
        self._expires_in = expires_in
        self._refresh_expires_in = refresh_expires_in
        self._mfa_code = mfa_code
        self._clock = clock
        self._access: dict[str, _Issued] = {}
        self._refresh: dict[str, _Issued] = {}
        self._challenges: dict[str, _Issued] = {}

    def check_password(self, username: str, password: str) -> Account | None:
        account = self._accounts.get(username)
        # Compare even for an unknown user, so the answer time does not tell which usernames exist.
        expected = account.password if account is not None else secrets.token_hex(16)
        if not hmac.compare_digest(password.encode(), expected.encode()) or account is None:
            return None
        return account

    def issue(self, grant: Grant, expires_in: int | None = None) -> TokenPair:
        now = self._clock()
        lifetime = expires_in or self._expires_in
        access, refresh = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        self._access[access] = _Issued(now + lifetime, grant)
        self._refresh[refresh] = _Issued(now + self._refresh_expires_in, grant, lifetime)
        self._prune(now)
        return TokenPair(access, refresh, lifetime, grant)

    def refresh(self, refresh_token: str) -> TokenPair | None:
        """A new pair for a live refresh token, which is used up; None for an unknown, used or expired one."""
        issued = self._refresh.pop(refresh_token, None)
        if issued is None or self._clock() >= issued.expires_at:
            return None
        return self.issue(issued.grant, issued.expires_in)

    def resolve(self, access_token: str) -> Grant | None:
        issued = self._access.get(access_token)
        if issued is None:
            return None
        if self._clock() >= issued.expires_at:
            del self._access[access_token]
            return None
        return issued.grant

    def challenge(self, grant: Grant, expires_in: int | None) -> str:
        challenge = secrets.token_urlsafe(24)
        self._challenges[challenge] = _Issued(self._clock() + CHALLENGE_SECONDS, grant, expires_in or 0)
        return challenge

    def complete_challenge(self, challenge: str, code: str) -> TokenPair | None:
        """Tokens for a live challenge answered with the right code (the challenge is then used up)."""
        issued = self._challenges.get(challenge)
        if issued is None or self._clock() >= issued.expires_at:
            self._challenges.pop(challenge, None)
            return None
        if not hmac.compare_digest(code.encode(), self._mfa_code.encode()):
            return None
        del self._challenges[challenge]
        return self.issue(issued.grant, issued.expires_in or None)

    def revoke_all(self) -> int:
        revoked = len(self._access)
        self._access.clear()
        self._refresh.clear()
        self._challenges.clear()
        return revoked

    def _prune(self, now: float) -> None:
        for table in (self._access, self._refresh, self._challenges):
            expired = [token for token, issued in table.items() if now >= issued.expires_at]
            for token in expired:
                del table[token]
