"""Reading the sandbox's v2 records in e2e tests (docs/cakemail-api.md, "v2 records")."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

# The built-in demo account's sender ids (docs/cakemail-api.md, "Built-in users, accounts and senders").
DEMO_SENDER_IDS = {"demo@example.com": "1", "ann@example.com": "2", "a@example.com": "3", "sender@example.com": "4"}


def v2_header(record: dict[str, Any], name: str) -> str | None:
    """A header the gateway passed in additional_headers, or None."""
    for header in record["payload"].get("additional_headers", []):
        if header["name"].lower() == name.lower():
            return str(header["value"])
    return None


def v2_records(emails: list[dict[str, Any]], **header: str) -> list[dict[str, Any]]:
    """The v2 records carrying every given additional header (X_Tag="t" matches "X-Tag: t")."""
    wanted = {name.replace("_", "-"): value for name, value in header.items()}
    return [e for e in emails if e["flavor"] == "v2" and all(v2_header(e, n) == v for n, v in wanted.items())]


def text_of(record: dict[str, Any]) -> str | None:
    """The text body a record carries, whichever API flavor made it."""
    payload = record["payload"]
    if record.get("flavor") == "v2":
        return payload["content"].get("text")  # type: ignore[no-any-return]
    return payload.get("text_body")  # type: ignore[no-any-return]


def subject_of(record: dict[str, Any]) -> str | None:
    """The subject a record carries, whichever API flavor made it."""
    payload = record["payload"]
    if record.get("flavor") == "v2":
        return payload["content"].get("subject")  # type: ignore[no-any-return]
    return payload.get("subject")  # type: ignore[no-any-return]


def add_sender(sandbox_url: str, email: str, *, confirmed: bool = True, account_id: int = 1001) -> str:
    """A sender added to a sandbox account at run time (POST /sandbox/senders); returns its id."""
    request = urllib.request.Request(
        sandbox_url + "/sandbox/senders",
        data=json.dumps({"account_id": account_id, "email": email, "confirmed": confirmed}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return str(json.loads(response.read())["id"])
