"""Pure mapping from the gRPC message to the API's OutgoingEmail: the envelope decides who receives it."""

from __future__ import annotations

from collections.abc import Iterable

from cakemail.gateway.v1 import forwarder_pb2 as pb
from forwarder.api.model import Mailbox, OutgoingAttachment, OutgoingEmail
from forwarder.submission.assembly import AssembledMessage


def _mailbox(address: pb.Address) -> Mailbox:
    return Mailbox(email=address.email, name=address.name)


def _folded(email: str) -> str:
    return email.strip().lower()


def split_recipients(
    rcpt_tos: Iterable[str], to: Iterable[pb.Address], cc: Iterable[pb.Address]
) -> tuple[tuple[Mailbox, ...], tuple[Mailbox, ...], tuple[Mailbox, ...]]:
    """Header To/Cc addresses that are envelope recipients keep their place; every other recipient is Bcc.

    Header addresses outside the envelope receive nothing (the envelope decides delivery, RFC 5321).
    Each envelope recipient appears exactly once.
    """
    pending: dict[str, str] = {}
    for rcpt in rcpt_tos:
        pending.setdefault(_folded(rcpt), rcpt)
    visible: list[list[Mailbox]] = [[], []]
    for slot, addresses in enumerate((to, cc)):
        for address in addresses:
            if _folded(address.email) in pending:
                del pending[_folded(address.email)]
                visible[slot].append(_mailbox(address))
    bcc = tuple(Mailbox(email=rcpt) for rcpt in pending.values())
    return tuple(visible[0]), tuple(visible[1]), bcc


def _custom_headers(headers: pb.MessageHeaders) -> dict[str, str]:
    merged: dict[str, str] = {}
    if headers.message_id:
        merged["Message-ID"] = headers.message_id
    for header in headers.extra:
        # Repeated headers are joined as RFC 5322 allows for list-like fields; the API takes one value a name.
        merged[header.name] = f"{merged[header.name]}, {header.value}" if header.name in merged else header.value
    return merged


def to_outgoing_email(message: AssembledMessage) -> OutgoingEmail:
    start = message.start
    headers = start.headers
    to, cc, bcc = split_recipients(start.envelope.rcpt_tos, headers.to, headers.cc)
    sender = (
        _mailbox(getattr(headers, "from"))
        if headers.HasField("from") and getattr(headers, "from").email
        else Mailbox(email=start.envelope.mail_from)
    )
    return OutgoingEmail(
        sender=sender,
        envelope_from=start.envelope.mail_from,
        to=to,
        cc=cc,
        bcc=bcc,
        subject=headers.subject,
        text_body=message.text_body,
        html_body=message.html_body,
        reply_to=_mailbox(headers.reply_to[0]) if headers.reply_to else None,
        headers=_custom_headers(headers),
        attachments=tuple(
            OutgoingAttachment(
                filename=meta.filename,
                content_type=meta.content_type or "application/octet-stream",
                content_id=meta.content_id,
                inline=meta.disposition == pb.DISPOSITION_INLINE,
                data=data,
            )
            for meta, data in zip(start.attachments, message.attachment_data, strict=True)
        ),
    )
