"""Table: every corpus message (tests/data/mime) through the whole pure core gives the API payload that its
hand-checked expectation implies under the documented mapping (docs/mapping.md), envelope rules included.

The expected payload is derived from NAME.expected.json by the rules as written in the docs, independently of the
forwarder's code: From (or MAIL FROM when there is none), header To/Cc that are envelope recipients, every other
envelope recipient as Bcc, the first Reply-To, Message-ID and pass-through headers, attachments by content.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import pytest

from cakemail.gateway.v1 import forwarder_pb2 as pb
from forwarder.api.v1.wire import email_payload
from forwarder.submission.assembly import assemble
from forwarder.submission.mapping import to_outgoing_email
from gateway_mime import parse_message
from gateway_mime.frames import SmtpCredentials, SmtpEnvelope, submission_frames
from tests.unit.mime.shapes import crlf

CORPUS = Path(__file__).resolve().parents[1] / "data" / "mime"
CASES = sorted(path.stem for path in CORPUS.glob("*.eml"))
MAIL_FROM = "bounce@example.com"
HIDDEN = "hidden@example.org"


def _envelope(expected: dict[str, Any]) -> list[str]:
    return [a["email"] for a in expected["to"] + expected["cc"]] + [HIDDEN]


def expected_payload(expected: dict[str, Any]) -> dict[str, Any]:
    pending = {email.lower(): email for email in reversed(_envelope(expected))}
    visible: dict[str, list[dict[str, str]]] = {"to": [], "cc": []}
    for field in ("to", "cc"):
        for address in expected[field]:
            if address["email"].lower() in pending:
                del pending[address["email"].lower()]
                visible[field].append(address)
    headers: dict[str, str] = {"Message-ID": expected["message_id"]} if expected["message_id"] else {}
    for name, value in expected["extra_headers"]:
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    payload: dict[str, Any] = {
        "from": expected["from_"] or {"email": MAIL_FROM, "name": ""},
        "envelope_from": MAIL_FROM,
        "to": visible["to"],
        "cc": visible["cc"],
        "bcc": [{"email": email, "name": ""} for email in reversed(list(pending.values()))],
        "subject": expected["subject"],
        "headers": headers,
        "attachments": [
            {
                "filename": a["filename"],
                "content_type": a["content_type"] or "application/octet-stream",
                **({"content_id": a["content_id"]} if a["content_id"] else {}),
                "disposition": a["disposition"],
                "sha256": a["sha256"],
            }
            for a in expected["attachments"]
        ],
    }
    for body in ("text_body", "html_body"):
        if expected[body]:
            payload[body] = expected[body]
    if expected["reply_to"]:
        payload["reply_to"] = expected["reply_to"][0]
    return payload


async def _stream(frames: Iterable[pb.SubmitMessageRequest]) -> AsyncIterator[pb.SubmitMessageRequest]:
    for frame in frames:
        yield frame


def actual_payload(raw: bytes, envelope: list[str]) -> dict[str, Any]:
    parsed = parse_message(raw)
    frames = submission_frames(parsed, SmtpEnvelope(MAIL_FROM, tuple(envelope)), SmtpCredentials("u", "p"))
    payload = email_payload(to_outgoing_email(asyncio.run(assemble(_stream(frames), size_limit=50_000_000))))
    for attachment in payload["attachments"]:
        attachment["sha256"] = hashlib.sha256(base64.b64decode(attachment.pop("content"))).hexdigest()
    return payload


@pytest.mark.parametrize("name", CASES)
def test_corpus_message_gives_the_documented_api_payload(name: str) -> None:
    expected = json.loads((CORPUS / f"{name}.expected.json").read_text(encoding="utf-8"))
    raw = crlf((CORPUS / f"{name}.eml").read_bytes())
    assert actual_payload(raw, _envelope(expected)) == expected_payload(expected)
