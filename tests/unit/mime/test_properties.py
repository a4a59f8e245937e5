"""Round trip: messages the stdlib builds (any shape, charsets, attachments) parse back with nothing lost or altered.

Documented normalisations only: bodies compare modulo a trailing newline (set_content always ends the text with one),
header text modulo surrounding whitespace, display names modulo whitespace runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email import policy
from email.headerregistry import Address as StdAddress
from email.message import EmailMessage

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway_mime import Address, ParsedMessage, parse_message

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Characters each charset can carry, beyond printable ASCII (what real mail in that charset holds).
CHARSET_ALPHABETS = {
    "utf-8": "äöüßéèàç€☃日本語中文Привет😀✓–“”",  # noqa: RUF001 - typographic characters on purpose
    "iso-8859-1": "äöüßéèàçÀÉÎõñ¡¿£©®°±µ¶·»«",
    "windows-1252": "äöüéèàç€“”‘’–—…™œŒšŠžŽ",  # noqa: RUF001
    "iso-2022-jp": "日本語のテキストです会議明日",
    "shift_jis": "日本語のテキストですカタカナ",
    "gb2312": "中文文本测试会议明天上午",
    "koi8-r": "ПриветмирДобрыйденьЁё",
}
PRINTABLE_ASCII = "".join(chr(c) for c in range(0x20, 0x7F))
TRANSFER_ENCODINGS = ("quoted-printable", "base64", "8bit")
STDLIB_HEADER_DEFECTS = {
    "InvalidHeaderDefect",
    "ObsoleteHeaderDefect",
    "NonASCIILocalPartDefect",
    "EncodedAddressSeparatorDefect",
}

# Header text: no controls, no surrogates, no line/paragraph separators; "=?" would read as an encoded word.
header_text = st.text(
    st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp", "Co", "Cn")), min_size=0, max_size=60
).filter(lambda s: "=?" not in s)
# Display names: Unicode spaces other than " " are whitespace to the stdlib's phrase parser (kept or collapsed
# depending on quoting), so names use the plain space only.
name_text = st.text(
    st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp", "Zs", "Co", "Cn"), whitelist_characters=" "),
    max_size=40,
).filter(lambda s: "=?" not in s)
atom = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=10)
ascii_email = st.builds(lambda local, host: f"{local}@{host}.example", atom, atom)
unicode_atom = st.text("abcdéüöß日本中文пример", min_size=1, max_size=8)  # noqa: RUF001
utf8_email = st.builds(lambda local, host: f"{local}@{host}.example", unicode_atom, unicode_atom)


@st.composite
def body_text(draw: st.DrawFn) -> tuple[str, str, str]:
    charset = draw(st.sampled_from(sorted(CHARSET_ALPHABETS)))
    alphabet = PRINTABLE_ASCII + "\n" + CHARSET_ALPHABETS[charset]
    text = draw(st.text(alphabet, max_size=300))
    cte = draw(st.sampled_from(TRANSFER_ENCODINGS))
    return text, charset, cte


filename = (
    st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp", "Co", "Cn", "Zs")), min_size=1, max_size=40)
    .map(lambda s: s + ".bin")
    .filter(lambda s: "=?" not in s)
)
attachment = st.tuples(
    filename,
    st.sampled_from([("application", "pdf"), ("application", "octet-stream"), ("image", "png"), ("text", "csv")]),
    st.binary(max_size=500),
)


@dataclass(frozen=True)
class Spec:
    subject: str
    sender: tuple[str, str]
    to: list[tuple[str, str]]
    cc: list[tuple[str, str]]
    text: tuple[str, str, str] | None
    html: tuple[str, str, str] | None
    images: list[bytes]
    attachments: list[tuple[str, tuple[str, str], bytes]]


@st.composite
def specs(draw: st.DrawFn, emails: st.SearchStrategy[str]) -> Spec:
    mailbox = st.tuples(name_text, emails)
    text = draw(st.none() | body_text())
    html = draw(st.none() | body_text())
    if text is None and html is None:
        text = draw(body_text())
    return Spec(
        subject=draw(header_text),
        sender=draw(mailbox),
        to=draw(st.lists(mailbox, min_size=1, max_size=3)),
        cc=draw(st.lists(mailbox, max_size=2)),
        text=text,
        html=html,
        images=draw(st.lists(st.binary(max_size=200), max_size=2)) if html is not None else [],
        attachments=draw(st.lists(attachment, max_size=3)),
    )


def _mailbox(name: str, email: str) -> StdAddress:
    local, _, domain = email.rpartition("@")
    return StdAddress(display_name=name, username=local, domain=domain)


def build(spec: Spec) -> EmailMessage:
    """The structure Python's email examples build: alternative[text, related[html, images]], then mixed."""
    message = EmailMessage()
    message["From"] = _mailbox(*spec.sender)
    message["To"] = [_mailbox(*m) for m in spec.to]
    if spec.cc:
        message["Cc"] = [_mailbox(*m) for m in spec.cc]
    message["Subject"] = spec.subject
    message["Message-ID"] = "<property@test.example>"
    if spec.text is not None:
        text, charset, cte = spec.text
        message.set_content(text, charset=charset, cte=cte)
    if spec.html is not None:
        html, charset, cte = spec.html
        if spec.text is None:
            message.set_content(html, subtype="html", charset=charset, cte=cte)
        else:
            message.add_alternative(html, subtype="html", charset=charset, cte=cte)
        parts = message.get_payload()
        html_part = message if spec.text is None else parts[1] if isinstance(parts, list) else None
        assert isinstance(html_part, EmailMessage)
        for index, image in enumerate(spec.images):
            html_part.add_related(image, "image", "png", cid=f"<img{index}@test.example>")
    for name, (maintype, subtype), data in spec.attachments:
        message.add_attachment(data, maintype, subtype, filename=name)
    return message


def _comparable(name: str) -> str:
    """A display name is a phrase: runs of spaces carry no meaning (RFC 5322 3.2.5; the stdlib writes "a  b" unquoted).
    And where Python's folder splits an encoded name at a space it drops that space (RFC 2047 6.2 says the whitespace
    between encoded words is not text), so encoded names that had spaces compare without them."""
    name = re.sub(" +", " ", name).strip()
    return name.replace(" ", "") if not name.isascii() else name


def _same_addresses(parsed: tuple[Address, ...], mailboxes: list[tuple[str, str]]) -> bool:
    got = [(a.email, _comparable(a.name)) for a in parsed]
    return got == [(email, _comparable(name)) for name, email in mailboxes]


def _same_text(parsed: str, original: str) -> bool:
    return parsed.rstrip("\n") == original.rstrip("\n")


def check(spec: Spec, parsed: ParsedMessage) -> None:
    assert parsed.subject == spec.subject.strip(" ")
    assert parsed.from_ is not None
    assert _same_addresses((parsed.from_,), [spec.sender])
    assert _same_addresses(parsed.to, spec.to)
    assert _same_addresses(parsed.cc, spec.cc)
    assert parsed.message_id == "<property@test.example>"
    assert _same_text(parsed.text_body, spec.text[0] if spec.text else "")
    assert _same_text(parsed.html_body, spec.html[0] if spec.html else "")
    images = [(f"img{i}@test.example", "inline", "image/png", data) for i, data in enumerate(spec.images)]
    files = [("", "attachment", f"{m}/{s}", data) for _, (m, s), data in spec.attachments]
    got = [(a.content_id, a.disposition, a.content_type, a.data) for a in parsed.attachments]
    assert got == images + files
    assert [a.filename for a in parsed.attachments[len(images) :]] == [name for name, _, _ in spec.attachments]
    # The stdlib flags some of its own header output (encoded words next to text, UTF-8 local parts); nothing else.
    assert set(parsed.defects) <= STDLIB_HEADER_DEFECTS


@SETTINGS
@given(specs(ascii_email))
def test_round_trip_smtp_policy(spec: Spec) -> None:
    raw = build(spec).as_bytes(policy=policy.SMTP)
    check(spec, parse_message(raw))


@SETTINGS
@given(specs(utf8_email))
def test_round_trip_smtputf8_policy(spec: Spec) -> None:
    raw = build(spec).as_bytes(policy=policy.SMTPUTF8)
    check(spec, parse_message(raw))


@SETTINGS
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_give_clean_unicode(raw: bytes) -> None:
    """Any input: no exception, and every string is valid Unicode without CR/LF in header fields."""
    parsed = parse_message(raw)
    header_strings = [parsed.subject, parsed.message_id, *[v for pair in parsed.extra_headers for v in pair]]
    for address in (*parsed.to, *parsed.cc, *parsed.reply_to, *([parsed.from_] if parsed.from_ else [])):
        header_strings += [address.email, address.name]
    header_strings += [a.filename for a in parsed.attachments] + [a.content_id for a in parsed.attachments]
    for value in header_strings:
        value.encode("utf-8")  # raises on a lone surrogate
        assert "\r" not in value and "\n" not in value and "\x00" not in value
    for body in (parsed.text_body, parsed.html_body):
        body.encode("utf-8")
        assert "\r" not in body and "\x00" not in body
