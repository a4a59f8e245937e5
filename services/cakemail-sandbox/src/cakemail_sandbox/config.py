"""All sandbox configuration, from the environment (prefix SANDBOX_), in one place."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from cakemail_sandbox.faults import FaultTable


class Sender(BaseModel):
    """A sender (From address) of a Cakemail account; only confirmed ones may send through POST /v2/emails."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    email: str = Field(min_length=1)
    name: str = ""
    confirmed: bool = True
    # Opaque, unique across the sandbox; assigned ("1", "2", ...) in configuration order when left out.
    id: str | None = Field(default=None, min_length=1)
    # Which of the user's accounts owns it; the user's first (default) account when left out.
    account_id: int | None = Field(default=None, ge=1)


class Account(BaseModel):
    """A Cakemail user the sandbox knows: SMTP AUTH credentials, the accounts they reach and their senders.

    `account_id` and `email` are what the v1 API answers; `account_ids` (first = default), `mfa` and `senders`
    serve the v2 API. Every field but the credentials has a default, so v1-only and v2-only entries both work.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    username: str = Field(min_length=1)
    password: str = Field(min_length=1, repr=False)
    account_id: str = ""  # v1 id; "acct-<first account id>" when left out
    email: str = ""  # v1 email; the username when left out
    account_ids: tuple[int, ...] = ()  # assigned (1, 2, ... not used elsewhere) when left out
    mfa: bool = False
    senders: tuple[Sender, ...] = ()

    @model_validator(mode="after")
    def _unique_account_ids(self) -> Self:
        if len(set(self.account_ids)) != len(self.account_ids) or any(i < 1 for i in self.account_ids):
            raise ValueError("account_ids must be distinct integers >= 1")
        return self


# Every From address the repository's tests and smoke script send with: the demo account may use them all.
DEMO_SENDER_EMAILS = (
    "demo@example.com",
    "ann@example.com",
    "a@example.com",
    "sender@example.com",
    "from@example.com",
    "user@example.com",
    "a@x.test",
    "from@x.test",
    "s@x.test",
    "a@x.example",
    "0@0.example",
    "alice@example.com",
    "auto@example.com",
    "bench@example.com",
    "berichte@dotnet.example",
    "billing@example.com",
    "bjoern@tb.example",
    "bounce@example.com",
    "bounces@example.com",
    "broken@example.com",
    "deep@example.com",
    "evil@example.com",
    "files@example.com",
    "first@example.com",
    "forwarder@example.com",
    "francois@corp.example",
    "joerg@example.de",
    "lead@example.com",
    "list@example.com",
    "marketing@example.com",
    "news@example.com",
    "orders@shop.example",
    "organizer@example.com",
    "orig@example.net",
    "rene@example.fr",
    "renee.tremblay@gmail.example",
    "second@example.com",
    "smith@example.com",
    "svc@example.com",
    "third@example.com",
    "tim@mac.example",
)
UNCONFIRMED_DEMO_SENDER = "unconfirmed@example.com"
DEMO_ACCOUNT_IDS = (1001, 1002)

DEMO_ACCOUNT = Account(
    username="demo@example.com",
    password="demo-password",  # noqa: S106 - the documented local demo login
    account_id="acct-demo",
    email="demo@example.com",
    account_ids=DEMO_ACCOUNT_IDS,
    senders=(
        *(Sender(email=email, name="Demo" if email == "demo@example.com" else "") for email in DEMO_SENDER_EMAILS),
        Sender(email=UNCONFIRMED_DEMO_SENDER, name="Unconfirmed", confirmed=False),
        # The second account has its own sender: ids of the first account's senders are refused there.
        Sender(email="demo@example.com", name="Demo (second account)", account_id=DEMO_ACCOUNT_IDS[1]),
    ),
)
MFA_ACCOUNT = Account(
    username="mfa@example.com",
    password="mfa-password",  # noqa: S106 - the documented local demo login
    account_id="acct-mfa",
    email="mfa@example.com",
    account_ids=(2001,),
    mfa=True,
    senders=(Sender(email="mfa@example.com", name="MFA user"),),
)


def _complete(accounts: list[Account]) -> list[Account]:
    """Fills what each entry left out: account ids, v1 fields, sender ids and owners; refuses clashes."""
    taken = {account_id for account in accounts for account_id in account.account_ids}
    if len(taken) != sum(len(account.account_ids) for account in accounts):
        raise ValueError("an account id belongs to two users")
    if len({account.username for account in accounts}) != len(accounts):
        raise ValueError("two accounts have the same username")
    next_account_id = 1
    next_sender_id = 1
    sender_ids = {sender.id for account in accounts for sender in account.senders if sender.id is not None}
    completed = []
    for account in accounts:
        account_ids = account.account_ids
        if not account_ids:
            while next_account_id in taken:
                next_account_id += 1
            taken.add(next_account_id)
            account_ids = (next_account_id,)
        senders = []
        for sender in account.senders:
            owner = sender.account_id if sender.account_id is not None else account_ids[0]
            if owner not in account_ids:
                raise ValueError(f"sender {sender.email!r} belongs to account {owner}, not one of {account.username}'s")
            sender_id = sender.id
            if sender_id is None:
                while str(next_sender_id) in sender_ids:
                    next_sender_id += 1
                sender_id = str(next_sender_id)
                sender_ids.add(sender_id)
            senders.append(sender.model_copy(update={"id": sender_id, "account_id": owner}))
        completed.append(
            account.model_copy(
                update={
                    "account_ids": account_ids,
                    "account_id": account.account_id or f"acct-{account_ids[0]}",
                    "email": account.email or account.username,
                    "senders": tuple(senders),
                }
            )
        )
    if len(sender_ids) != sum(len(account.senders) for account in accounts):
        raise ValueError("two senders have the same id")
    return completed


MIB = 1024 * 1024


class SandboxSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SANDBOX_", case_sensitive=False, extra="ignore", validate_by_name=True, validate_by_alias=True
    )

    host: str = "127.0.0.1"
    port: int = Field(default=8090, ge=0, le=65535)
    # Shared with the other services, hence no SANDBOX_ prefix.
    log_level: str = Field(default="INFO", validation_alias=AliasChoices("LOG_LEVEL", "log_level"))
    # uvloop, as the services run (less CPU per request), or asyncio's own loop for an A/B; shared name as well.
    event_loop: Literal["uvloop", "asyncio"] = Field(
        default="uvloop", validation_alias=AliasChoices("EVENT_LOOP", "event_loop")
    )

    # JSON list of users (see Account); replaces the demo and MFA users.
    accounts: list[Account] = Field(default_factory=lambda: [DEMO_ACCOUNT, MFA_ACCOUNT], min_length=1)
    # JSON {"auth": {...}, "emails": {...}, "health": {...}}: faults active from startup (see faults.py).
    faults: FaultTable = Field(default_factory=dict)
    # Seed of the RNG that decides error_rate draws; unset means a fresh random seed.
    fault_seed: int | None = None

    # Lifetime of v1 api keys and of v2 access tokens (a password grant's expiration_seconds overrides it).
    token_expires_in: int = Field(default=900, gt=0)
    refresh_token_expires_in: int = Field(default=30 * 24 * 3600, gt=0)
    # POST /v2/emails to one of these addresses answers 201 with data.status "rejected" (compared case-insensitively).
    rejected_recipients: list[str] = Field(default_factory=lambda: ["rejected@example.com"])
    # The code that completes an MFA challenge at POST /token/challenge, and the status of the challenge answer.
    mfa_code: str = Field(default="123456", pattern=r"^[0-9]{6}$", repr=False)
    mfa_challenge_status: Literal[200, 401] = 401
    idempotency_ttl_seconds: float = Field(default=24 * 3600, gt=0)
    max_request_bytes: int = Field(default=35 * MIB, gt=0)
    # The recorded emails kept (the web inbox, /sandbox/emails, GET /v2/emails/{id}): the oldest go first once
    # there are more than this many, or once their attachments and bodies add up to more than the bytes; 0: no
    # bound. As Mailpit's --max: a sandbox left running under `make run` must not grow without end.
    max_emails: int = Field(default=50_000, ge=0)
    max_email_bytes: int = Field(default=256 * MIB, ge=0)
    max_attachment_bytes: int = Field(default=10 * MIB, gt=0)
    # Upper bound of a `hang` fault, so a forgotten fault cannot pin a connection forever.
    hang_max_seconds: float = Field(default=120.0, gt=0)
    # How long shutdown waits for requests in flight before cancelling them.
    shutdown_grace_seconds: int = Field(default=5, ge=0)

    @field_validator("accounts", mode="after")
    @classmethod
    def _complete_accounts(cls, accounts: list[Account]) -> list[Account]:
        return _complete(accounts)
