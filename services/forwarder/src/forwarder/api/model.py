"""The flavor-independent shapes the rest of the forwarder hands to the API package and gets back."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Mailbox:
    email: str
    name: str = ""


@dataclass(frozen=True, slots=True)
class OutgoingAttachment:
    filename: str
    content_type: str
    content_id: str
    inline: bool
    data: bytes | bytearray


@dataclass(frozen=True, slots=True)
class OutgoingEmail:
    """A message ready for the API: the envelope recipients, also split into to/cc/bcc for a flavor that shows them."""

    sender: Mailbox
    envelope_from: str
    to: tuple[Mailbox, ...]
    cc: tuple[Mailbox, ...]
    bcc: tuple[Mailbox, ...]
    subject: str
    text_body: str
    html_body: str
    reply_to: Mailbox | None
    headers: dict[str, str] = field(default_factory=dict)
    attachments: tuple[OutgoingAttachment, ...] = ()

    @property
    def recipients(self) -> tuple[str, ...]:
        """Every envelope recipient once, To first, then Cc, then Bcc."""
        return tuple(m.email for m in (*self.to, *self.cc, *self.bcc))


@dataclass(frozen=True, slots=True)
class Session:
    """What signing in gave: a bearer token and the accounts it may act for (the first is the default)."""

    access_token: str
    accounts: tuple[str, ...]
    email: str
    expires_in: float
    refresh_token: str = ""
    # True for a direct caller's access token checked for one account: every call names that account
    # (?account_id=), never the token's default one, which the gateway does not know.
    pinned_account: bool = False

    @property
    def account_id(self) -> str:
        return self.accounts[0] if self.accounts else ""


@dataclass(frozen=True, slots=True)
class MessageRef:
    """Which message this is across the client's resends (`identity`), and a digest of its content and recipients."""

    identity: str
    content_digest: str
