"""promtool and prometheus from Debian's `prometheus` package (`make test` installs it when missing)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest


def binary(name: str) -> str:
    path = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
    if path is None:
        pytest.fail(f"{name} is missing: `make test` installs Debian's prometheus package (apt-get install prometheus)")
    return path


def promtool(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary("promtool"), *map(str, args)], capture_output=True, text=True, timeout=60, cwd=cwd, check=False
    )
