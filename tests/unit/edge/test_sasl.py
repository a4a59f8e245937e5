"""SASL PLAIN decoding (RFC 4616)."""

from __future__ import annotations

import pytest

from smtp_edge.smtp.auth import SaslSyntaxError, decode_b64, split_plain


def test_plain_ignores_the_authorization_identity() -> None:
    assert split_plain(b"admin\0user@x.test\0p\xc3\xa9ss") == ("user@x.test", "p\u00e9ss")


@pytest.mark.parametrize("blob", [b"user\0pass", b"a\0b\0c\0d", b"", b"\0\xff\0p"])
def test_plain_refuses_malformed_blobs(blob: bytes) -> None:
    with pytest.raises(SaslSyntaxError) as problem:
        split_plain(blob)
    assert problem.value.reply.startswith("501 5.5.2")


def test_base64_rules() -> None:
    assert decode_b64("=") == b""
    assert decode_b64("dXNlcg==") == b"user"
    with pytest.raises(SaslSyntaxError):
        decode_b64("not base64!")
    with pytest.raises(SaslSyntaxError):
        decode_b64("caf\u00e9")
