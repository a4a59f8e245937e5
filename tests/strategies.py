"""Hypothesis strategies for whole messages as real clients build them with the stdlib, and what the API must get."""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from hypothesis import strategies as st

_TEXT = st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp", "Co", "Cn"))
subjects = st.text(_TEXT, max_size=50).map(str.strip).filter(lambda s: "=?" not in s)
names = st.text(st.characters(whitelist_categories=("L", "N"), whitelist_characters=" -'"), max_size=20).map(
    lambda s: " ".join(s.split())
)
lines = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp", "Co", "Cn")), max_size=60)
bodies = st.lists(lines, min_size=1, max_size=8).map(lambda ls: "\n".join(line.rstrip() for line in ls) + "\n")
filenames = (
    st.text(st.characters(whitelist_categories=("L", "N"), whitelist_characters="-_ ."), min_size=1, max_size=20)
    .map(str.strip)
    .filter(lambda s: s not in {"", ".", ".."})
)


@dataclass(frozen=True)
class Spec:
    subject: str
    sender_name: str
    text: str
    html: str | None
    attachments: tuple[tuple[str, bytes], ...]

    def message(self) -> EmailMessage:
        msg = EmailMessage()
        msg["From"] = f"{self.sender_name} <ann@example.com>" if self.sender_name else "ann@example.com"
        msg["To"] = "Bob <bob@example.net>"
        msg["Subject"] = self.subject
        msg.set_content(self.text)
        if self.html is not None:
            msg.add_alternative(self.html, subtype="html")
        for filename, data in self.attachments:
            msg.add_attachment(data, maintype="application", subtype="octet-stream", filename=filename)
        return msg

    def check(self, payload: dict[str, Any], attachments: list[bytes]) -> None:
        """Nothing lost, nothing altered (bodies as documented: LF line ends, a final newline)."""
        assert payload["subject"] == self.subject
        assert payload["from"] == {"email": "ann@example.com", "name": self.sender_name}
        assert payload["to"] == [{"email": "bob@example.net", "name": "Bob"}]
        assert payload["text_body"] == self.text
        if self.html is None:
            assert "html_body" not in payload
        else:
            assert payload["html_body"].rstrip("\n") == self.html.rstrip("\n")
        assert [a["filename"] for a in payload["attachments"]] == [name for name, _ in self.attachments]
        assert attachments == [data for _, data in self.attachments]


specs = st.builds(
    Spec,
    subject=subjects,
    sender_name=names,
    text=bodies,
    html=st.one_of(st.none(), bodies.map(lambda b: f"<p>{b}</p>")),
    attachments=st.lists(st.tuples(filenames, st.binary(max_size=4096)), max_size=3).map(tuple),
)
