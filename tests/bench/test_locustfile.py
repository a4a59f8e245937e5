"""bench/locustfile.py drives the real stack: a few seconds of headless Locust, every transaction a success, and the
sandbox holding what was sent."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from devstack.stack import Stack
from tests.conftest import SandboxView

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def test_locust_smtp_users_send_without_failures(stack: Stack, sandbox: SandboxView, tmp_path: Path) -> None:
    before = len(sandbox.emails(content=False))
    prefix = tmp_path / "run"
    done = subprocess.run(
        [
            sys.executable, "-m", "locust", "-f", "bench/locustfile.py", "--headless",
            "-u", "4", "-r", "4", "-t", "4s", "--stop-timeout", "30",
            "--host", f"smtp://127.0.0.1:{stack.ports.smtp_starttls}",
            "--csv", str(prefix), "--only-summary", "--loglevel", "WARNING",
        ],
        cwd=ROOT,
        env={**os.environ, "SMTP_CA_FILE": str(stack.certificate.ca_file)},
        capture_output=True,
        text=True,
        timeout=90,
    )  # fmt: skip
    assert done.returncode == 0, f"locust failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    rows = {row["Name"]: row for row in csv.DictReader((tmp_path / "run_stats.csv").open())}
    total = rows.pop("Aggregated")
    requests, failures = int(total["Request Count"]), int(total["Failure Count"])
    assert failures == 0, (tmp_path / "run_failures.csv").read_text()
    assert requests >= 10
    assert all(row["Type"] == "SMTP" for row in rows.values())
    assert "small" in rows  # the dominant shape ran
    # Each successful transaction delivered at least one email (10-recipient messages several).
    assert len(sandbox.emails(content=False)) - before >= requests
