"""Senders per account: the configured ones, plus those tests add at run time (POST /sandbox/senders)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from cakemail_sandbox.config import Account


@dataclass(frozen=True, slots=True)
class SenderEntry:
    id: str
    account_id: int
    email: str
    name: str
    confirmed: bool

    def to_json(self) -> dict[str, Any]:
        """The API's SenderFullResponse."""
        return {
            "id": self.id,
            "name": self.name,
            "email": self.email,
            "confirmed": self.confirmed,
            "language": "en_US",
        }


class SenderDirectory:
    def __init__(self, accounts: Iterable[Account]) -> None:
        self._initial = [
            SenderEntry(
                id=str(sender.id),
                account_id=int(sender.account_id or account.account_ids[0]),
                email=sender.email,
                name=sender.name,
                confirmed=sender.confirmed,
            )
            for account in accounts
            for sender in account.senders
        ]
        self._senders: list[SenderEntry] = []
        self.reset()

    def reset(self) -> None:
        """Back to the configured senders (run-time additions and changes forgotten)."""
        self._senders = list(self._initial)

    def of_account(self, account_id: int) -> list[SenderEntry]:
        return [sender for sender in self._senders if sender.account_id == account_id]

    def find(self, account_id: int, sender_id: str) -> SenderEntry | None:
        for sender in self._senders:
            if sender.id == sender_id and sender.account_id == account_id:
                return sender
        return None

    def put(self, account_id: int, email: str, name: str, confirmed: bool) -> tuple[SenderEntry, bool]:
        """Adds a sender, or updates the one with that address (case-insensitive) in the account; True if created."""
        for index, sender in enumerate(self._senders):
            if sender.account_id == account_id and sender.email.lower() == email.lower():
                updated = replace(sender, name=name or sender.name, confirmed=confirmed)
                self._senders[index] = updated
                return updated, False
        taken = {sender.id for sender in self._senders}
        number = len(self._senders) + 1
        while str(number) in taken:
            number += 1
        created = SenderEntry(id=str(number), account_id=account_id, email=email, name=name, confirmed=confirmed)
        self._senders.append(created)
        return created, True
