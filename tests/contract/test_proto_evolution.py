"""The public proto evolves additively only: buf breaking accepts an added field and refuses a deliberate break,
on scratch copies of proto/ compared against the repository's own."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUF = ROOT / "node_modules" / ".bin" / "buf"
PROTO = "proto/cakemail/gateway/v1/forwarder.proto"

pytestmark = pytest.mark.skipif(not BUF.exists(), reason="buf is installed by `make test` (npm ci)")


def _scratch(tmp_path: Path, edit: tuple[str, str]) -> Path:
    copy = tmp_path / "scratch"
    shutil.copytree(ROOT / "proto", copy / "proto")
    shutil.copy(ROOT / "buf.yaml", copy / "buf.yaml")
    target = copy / PROTO
    text = target.read_text()
    old, new = edit
    assert old in text
    target.write_text(text.replace(old, new, 1))
    return copy


def _breaking(scratch: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BUF), "breaking", str(scratch), "--against", str(ROOT)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )


def test_an_additive_change_passes(tmp_path: Path) -> None:
    added = ("  bytes data = 3;\n}", "  bytes data = 3;\n  // A later addition.\n  string note = 4;\n}")
    done = _breaking(_scratch(tmp_path, added))
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_deliberate_breaking_change_fails(tmp_path: Path) -> None:
    # RawMessageStart.data changes type: every released client would misread it.
    broken = ("  bytes data = 3;\n}\n\n// RawMessageChunk", "  string data = 3;\n}\n\n// RawMessageChunk")
    done = _breaking(_scratch(tmp_path, broken))
    assert done.returncode != 0
    assert "RawMessageStart" in done.stdout + done.stderr and "type" in done.stdout + done.stderr
