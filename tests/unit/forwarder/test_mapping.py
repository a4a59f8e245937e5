"""Pure mapping: gRPC MessageStart -> OutgoingEmail -> API JSON, by table."""

from __future__ import annotations

import base64

import pytest

from cakemail.gateway.v1 import forwarder_pb2 as pb
from forwarder.api.model import Mailbox
from forwarder.api.v1.wire import email_payload
from forwarder.submission.assembly import AssembledMessage
from forwarder.submission.mapping import split_recipients, to_outgoing_email


def addr(email: str, name: str = "") -> pb.Address:
    return pb.Address(email=email, name=name)


@pytest.mark.parametrize(
    ("rcpts", "to", "cc", "expected"),
    [
        pytest.param(["a@x.test"], [addr("a@x.test", "A")], [], (["a@x.test"], [], []), id="to-only"),
        pytest.param(
            ["a@x.test", "b@x.test", "c@x.test"],
            [addr("a@x.test")],
            [addr("b@x.test")],
            (["a@x.test"], ["b@x.test"], ["c@x.test"]),
            id="to-cc-bcc",
        ),
        pytest.param(
            ["hidden@x.test"], [addr("list@x.test")], [], ([], [], ["hidden@x.test"]), id="header-not-in-envelope"
        ),
        pytest.param(["A@X.test"], [addr("a@x.TEST", "A")], [], (["a@x.TEST"], [], []), id="case-insensitive"),
        pytest.param(
            ["a@x.test", "a@x.test"], [addr("a@x.test")], [addr("a@x.test")], (["a@x.test"], [], []), id="each-once"
        ),
        pytest.param(["a@x.test"], [], [], ([], [], ["a@x.test"]), id="no-headers-all-bcc"),
    ],
)
def test_split_recipients(
    rcpts: list[str], to: list[pb.Address], cc: list[pb.Address], expected: tuple[list[str], ...]
) -> None:
    got = split_recipients(rcpts, to, cc)
    assert tuple([m.email for m in part] for part in got) == expected


def test_split_keeps_display_names() -> None:
    to, _cc, _bcc = split_recipients(["a@x.test"], [addr("a@x.test", "Ann")], [])
    assert to == (Mailbox("a@x.test", "Ann"),)


def _assembled(start: pb.MessageStart, attachments: tuple[bytes, ...] = ()) -> AssembledMessage:
    return AssembledMessage(
        start=start,
        text_body=start.text_body,
        html_body=start.html_body,
        attachment_data=attachments,
        identity="<m@x.test>",
        content_digest="d",
        size=0,
    )


def test_payload_matches_the_documented_contract() -> None:
    start = pb.MessageStart(
        credentials=pb.Credentials(username="u", password="p"),
        envelope=pb.Envelope(mail_from="bounce@x.test", rcpt_tos=["to@x.test", "bcc@x.test"]),
        headers=pb.MessageHeaders(
            to=[addr("to@x.test", "To")],
            reply_to=[addr("reply@x.test", "Reply"), addr("second@x.test")],
            subject="Hello",
            message_id="<id@x.test>",
            extra=[pb.Header(name="X-Tag", value="a"), pb.Header(name="X-Tag", value="b")],
        ),
        text_body="text",
        html_body="<b>html</b>",
        attachments=[
            pb.Attachment(filename="a.pdf", content_type="application/pdf", size=3),
            pb.Attachment(
                filename="logo.png",
                content_type="image/png",
                content_id="logo@x",
                disposition=pb.DISPOSITION_INLINE,
                size=2,
            ),
        ],
    )
    getattr(start.headers, "from").CopyFrom(addr("from@x.test", "From"))
    payload = email_payload(to_outgoing_email(_assembled(start, (b"pdf", b"\x89P"))))
    assert payload == {
        "from": {"email": "from@x.test", "name": "From"},
        "envelope_from": "bounce@x.test",
        "to": [{"email": "to@x.test", "name": "To"}],
        "cc": [],
        "bcc": [{"email": "bcc@x.test", "name": ""}],
        "subject": "Hello",
        "text_body": "text",
        "html_body": "<b>html</b>",
        "reply_to": {"email": "reply@x.test", "name": "Reply"},
        "headers": {"Message-ID": "<id@x.test>", "X-Tag": "a, b"},
        "attachments": [
            {
                "filename": "a.pdf",
                "content": base64.b64encode(b"pdf").decode(),
                "content_type": "application/pdf",
                "disposition": "attachment",
            },
            {
                "filename": "logo.png",
                "content": base64.b64encode(b"\x89P").decode(),
                "content_type": "image/png",
                "content_id": "logo@x",
                "disposition": "inline",
            },
        ],
    }


def test_sender_falls_back_to_the_envelope_and_empty_bodies_are_left_out() -> None:
    start = pb.MessageStart(envelope=pb.Envelope(mail_from="env@x.test", rcpt_tos=["r@x.test"]))
    payload = email_payload(to_outgoing_email(_assembled(start)))
    assert payload["from"] == {"email": "env@x.test", "name": ""}
    assert "text_body" not in payload and "html_body" not in payload and "reply_to" not in payload
