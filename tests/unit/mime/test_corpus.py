"""Table test: every tests/data/mime/NAME.eml parses to the hand-checked NAME.expected.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway_mime import parse_message
from tests.unit.mime.shapes import as_expected_shape, crlf

CORPUS = Path(__file__).resolve().parents[2] / "data" / "mime"
CASES = sorted(path.stem for path in CORPUS.glob("*.eml"))


def test_corpus_is_complete() -> None:
    expected = sorted(path.name.removesuffix(".expected.json") for path in CORPUS.glob("*.expected.json"))
    assert expected == CASES
    assert len(CASES) >= 20


@pytest.mark.parametrize("name", CASES)
def test_corpus_message(name: str) -> None:
    raw = crlf((CORPUS / f"{name}.eml").read_bytes())
    expected = json.loads((CORPUS / f"{name}.expected.json").read_text(encoding="utf-8"))
    parsed = parse_message(raw)
    assert as_expected_shape(parsed) == expected
