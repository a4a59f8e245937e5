"""The streamed JSON body is exactly the documented payload, with an exact Content-Length."""

from __future__ import annotations

import dataclasses
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from forwarder.api.model import Mailbox, OutgoingAttachment, OutgoingEmail
from forwarder.api.v1.wire import email_body, email_payload
from tests.unit.forwarder.samples import EMAIL

texts = st.text(max_size=40)
attachments = st.builds(
    OutgoingAttachment,
    filename=texts,
    content_type=st.sampled_from(["application/pdf", "image/png", "text/calendar"]),
    content_id=st.one_of(st.just(""), texts),
    inline=st.booleans(),
    data=st.binary(max_size=3000),
)
emails = st.builds(
    OutgoingEmail,
    sender=st.builds(Mailbox, email=texts, name=texts),
    envelope_from=texts,
    to=st.lists(st.builds(Mailbox, email=texts, name=texts), max_size=3).map(tuple),
    cc=st.just(()),
    bcc=st.lists(st.builds(Mailbox, email=texts), max_size=2).map(tuple),
    subject=texts,
    text_body=texts,
    html_body=texts,
    reply_to=st.one_of(st.none(), st.builds(Mailbox, email=texts, name=texts)),
    headers=st.dictionaries(texts, texts, max_size=3),
    attachments=st.lists(attachments, max_size=4).map(tuple),
)


@settings(max_examples=150, deadline=None)
@given(emails)
def test_streamed_body_is_the_payload(email: OutgoingEmail) -> None:
    body = email_body(email)
    raw = b"".join(body.chunks())
    assert len(raw) == body.length
    assert json.loads(raw) == email_payload(email)
    assert b"".join(body.chunks()) == raw  # can be produced again, for a retry


def test_large_attachments_stream_in_bounded_pieces() -> None:
    big = OutgoingAttachment("big.bin", "application/octet-stream", "", False, bytearray(b"\x00" * 5_000_000))
    body = email_body(dataclasses.replace(EMAIL, attachments=(big,)))
    pieces = list(body.chunks())
    assert max(len(p) for p in pieces) <= 1024 * 1024 + 64
    assert sum(len(p) for p in pieces) == body.length
