"""A minimal valid outgoing email, shared by the forwarder's unit tests."""

from __future__ import annotations

from forwarder.api.model import Mailbox, OutgoingEmail

EMAIL = OutgoingEmail(
    sender=Mailbox("a@x.test"),
    envelope_from="a@x.test",
    to=(Mailbox("b@x.test"),),
    cc=(),
    bcc=(),
    subject="s",
    text_body="t",
    html_body="",
    reply_to=None,
)
