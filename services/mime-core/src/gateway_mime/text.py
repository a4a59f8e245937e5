"""Bytes and header text to clean Unicode: charset fallbacks, RFC 2047 words, surrogate and control-character scrubbing.

Everything here returns valid Unicode (no lone surrogates) because protobuf string fields and the JSON API reject them.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import quopri
import re

# Labels mail clients use that Python does not know, or knows under another name (WHATWG Encoding Standard labels).
_ALIASES = {
    "iso-8859-8-i": "iso-8859-8",
    "iso-8859-6-i": "iso-8859-6",
    "x-mac-roman": "mac-roman",
    "macintosh": "mac-roman",
    "x-sjis": "shift_jis",
    "ms_kanji": "shift_jis",
    "x-gbk": "gbk",
    "x-euc-jp": "euc_jp",
    "ansi_x3.4-1968": "ascii",
    "x-user-defined": "",
}

# Decode declared charsets as the superset every mail client actually uses (WHATWG does the same): Outlook's
# "iso-8859-1" holds windows-1252 quotes, "gb2312" mail holds GBK, "shift_jis" holds Windows-31J, and so on.
_SUPERSETS = {
    "iso8859-1": "cp1252",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "shift_jis": "cp932",
    "euc_kr": "cp949",
    "big5": "big5hkscs",
    "iso2022_jp": "iso2022_jp_ext",
    "tis-620": "cp874",
    "iso8859-11": "cp874",
    "iso8859-9": "cp1254",
}

# Text codecs that turn arbitrary bytes into something that is not the message's text.
_NOT_CHARSETS = frozenset({"unicode-escape", "raw-unicode-escape", "punycode", "idna", "undefined", "mbcs", "oem"})

_SURROGATE_RUN = re.compile("[\udc80-\udcff]+")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_NEWLINES = re.compile("[\r\n]+")
_FOLD = re.compile("\r?\n(?=[ \t])|\r(?=[ \t])")
_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([qQbB])\?([^?\s]*)\?=")
_BASE64_JUNK = re.compile(rb"[^A-Za-z0-9+/=]")
_ASCII_WHITESPACE = b" \t\n\r\x0b\x0c"  # what bytes.split() splits on
_BASE64_SEGMENT = re.compile(rb"[A-Za-z0-9+/]+")


def codec_for(charset: str | None) -> str | None:
    """The Python codec for a MIME charset label, or None when it is unknown (or not a text charset at all)."""
    if not charset:
        return None
    label = charset.strip().strip("\"'").lower()
    label = _ALIASES.get(label, label)
    if not label:
        return None
    try:
        info = codecs.lookup(label)
    except (LookupError, ValueError):
        return None
    if not getattr(info, "_is_text_encoding", True) or info.name in _NOT_CHARSETS:
        return None
    return info.name


def decode_bytes(data: bytes, charset: str | None) -> tuple[str, str | None]:
    """Decode with the declared charset (as its superset), else UTF-8, else Windows-1252/Latin-1: never raises.

    Returns the text and the name of the defect when the declared charset could not be honoured.
    """
    codec = codec_for(charset)
    unknown = "UnknownCharsetDefect" if charset is not None and charset.strip() and codec is None else None
    if codec is None or codec == "ascii":
        if data.isascii():
            return data.decode("ascii"), unknown
        return _utf8_or_latin(data), unknown or ("UndecodableBytesDefect" if codec else None)
    superset = _SUPERSETS.get(codec, codec)
    for candidate in dict.fromkeys((superset, codec)):
        try:
            return data.decode(candidate), None
        except UnicodeDecodeError:
            continue
    try:
        return data.decode("utf-8"), "UndecodableBytesDefect"
    except UnicodeDecodeError:
        return scrub(data.decode(superset, "replace")), "UndecodableBytesDefect"


def _utf8_or_latin(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _unescape_run(match: re.Match[str]) -> str:
    return _utf8_or_latin(bytes(ord(ch) - 0xDC00 for ch in match.group()))


def scrub(text: str) -> str:
    """Surrogate-escaped raw bytes (8-bit headers) back to text, UTF-8 first; any other lone surrogate -> U+FFFD."""
    if not _LONE_SURROGATE.search(text):
        return text
    return _LONE_SURROGATE.sub("\ufffd", _SURROGATE_RUN.sub(_unescape_run, text))


def unfold(value: str) -> str:
    """RFC 5322 unfolding: a line break followed by whitespace is removed, the whitespace kept."""
    return _FOLD.sub("", value)


def clean_header_text(value: str) -> str:
    """Header text safe to hand on: CR/LF runs become one space (no header injection), other controls (NUL...) go."""
    value = _NEWLINES.sub(" ", scrub(value))
    return _CONTROL.sub("", value).replace("\t", " ").strip(" ")


def clean_body_text(value: str) -> str:
    """Bodies use "\\n" line endings; NUL is dropped (no text format, nor the API's storage, carries it)."""
    return value.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")


def as_received(text: str) -> bytes:
    """Text the parser made from bytes (ASCII, with 8-bit bytes surrogate-escaped) back into those bytes. Text that
    holds real non-ASCII characters (an RFC 2231 filename, say) becomes UTF-8 instead of raising, and any other lone
    surrogate U+FFFD: never raises."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return scrub(text).encode("utf-8")


def _decode_word(encoding: str, payload: str) -> bytes:
    raw = as_received(payload)
    if encoding in "qQ":
        return quopri.decodestring(raw.replace(b"_", b" "), header=False)
    return lenient_b64decode(raw)[0]


def decode_encoded_words(value: str) -> str:
    """RFC 2047 decoding that never raises: adjacent words of one charset are joined as bytes before decoding,
    so a multi-byte character split across two words survives; unknown charsets take the bytes fallback."""
    pieces: list[str] = []
    pending: list[bytes] = []
    pending_charset: str | None = None
    position = 0

    def flush() -> None:
        nonlocal pending_charset
        if pending:
            pieces.append(decode_bytes(b"".join(pending), pending_charset)[0])
            pending.clear()
        pending_charset = None

    for match in _ENCODED_WORD.finditer(value):
        between = value[position : match.start()]
        charset = match.group(1).split("*", 1)[0].lower()
        # Whitespace between two encoded words is not text (RFC 2047 6.2).
        if not pending or between.strip():
            flush()
            pieces.append(between)
        elif charset != pending_charset:
            flush()
        pending.append(_decode_word(match.group(2), match.group(3)))
        pending_charset = charset
        position = match.end()
    flush()
    pieces.append(value[position:])
    return scrub("".join(pieces))


def lenient_b64decode(data: bytes) -> tuple[bytes, str | None]:
    """Base64 that decodes what it can: junk characters are skipped, each padded segment is decoded on its own.

    Returns the bytes and the name of the defect found, if any.
    """
    # Without its whitespace: `b"".join(data.split())` made a bytes object per line on the way (a 10 MB attachment:
    # ~135,000 of them, 1.5x its size), this one copy.
    compact = data.translate(None, _ASCII_WHITESPACE)
    try:
        return base64.b64decode(compact, validate=True), None
    except (binascii.Error, ValueError):
        pass
    cleaned = _BASE64_JUNK.sub(b"", data)
    defect = "InvalidBase64CharactersDefect" if len(cleaned) != len(compact) else "InvalidBase64PaddingDefect"
    del compact
    decoded = bytearray()
    for segment in _BASE64_SEGMENT.findall(cleaned):
        usable = len(segment) - len(segment) % 4
        tail = segment[usable:]
        chunk = segment[:usable] + (tail + b"=" * (4 - len(tail)) if len(tail) >= 2 else b"")
        decoded += base64.b64decode(chunk)
    return bytes(decoded), defect
