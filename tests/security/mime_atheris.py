"""Coverage-guided fuzzing of the MIME core with atheris (libFuzzer for Python), seeded with tests/data/mime.

    python -m tests.security.mime_atheris [libFuzzer flags, e.g. -max_total_time=300]

A crash is any exception but MessageRejected, a broken output bound (mime_bounds.py), an input slower than
-timeout seconds, or more memory than -rss_limit_mb. `make fuzz` runs it long; tests/security/test_mime_fuzz.py
runs it briefly under `make test`.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["gateway_mime", "email"]):
    from tests.security import mime_bounds


def one_input(data: bytes) -> None:
    mime_bounds.check(data)


def main(argv: list[str]) -> None:
    with tempfile.TemporaryDirectory(prefix="mime-corpus-") as work:
        corpus = Path(work)  # libFuzzer adds what it finds here: never into the repository
        for seed in mime_bounds.CORPUS.glob("*.eml"):
            shutil.copy(seed, corpus)
        artifacts = Path(tempfile.gettempdir()) / "mime-fuzz-artifacts"
        artifacts.mkdir(exist_ok=True)  # a crashing input is written here (the path is printed)
        flags = [
            "-timeout=10",  # seconds per input: slower is a finding
            "-rss_limit_mb=2048",
            "-max_len=65536",
            f"-artifact_prefix={artifacts}/",
            "-print_final_stats=1",
        ]
        atheris.Setup([argv[0], *flags, *argv[1:], str(corpus)], one_input)
        atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
