"""`make audit` (tools/supplychain/audit.py) over a fake pip-audit: a real subprocess that answers like pip-audit
does (its JSON report, its exit status, its traceback when the network is down), one answer per vulnerability
service. The real pip-audit cannot be relied on here: the network may be down or PyPI's vulnerability API blocked."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
H = "--hash=sha256:" + "a" * 64
OFFLINE_TRACEBACK = textwrap.dedent("""\
    Traceback (most recent call last):
      File "requests/adapters.py", line 729, in send
    requests.exceptions.ConnectionError: HTTPSConnectionPool(host='api.osv.dev', port=443): Max retries exceeded
    with url: /v1/query (Caused by NameResolutionError("Failed to resolve 'api.osv.dev'"))
""")


def clean(name: str, version: str) -> dict[str, object]:
    return {"name": name, "version": version, "vulns": []}


def skipped(name: str, version: str) -> dict[str, object]:
    reason = f"Dependency not found on PyPI and could not be audited: {name} ({version})"
    return {"name": name, "skip_reason": reason}


JINJA_CVE = {
    "name": "jinja2",
    "version": "3.1.2",
    "vulns": [
        {
            "id": "GHSA-h5c8-rqwp-cp95",
            "fix_versions": ["3.1.3"],
            "aliases": ["CVE-2024-22195"],
            "description": "xmlattr filter allows keys with spaces",
        }
    ],
}


def fake_pip_audit(tmp_path: Path, answers: Answers) -> Path:
    """An executable that answers each --vulnerability-service with (exit status, JSON report or None, stderr), and
    records its arguments."""
    script = tmp_path / "pip-audit"
    script.write_text(
        textwrap.dedent(f"""\
        #!{sys.executable}
        import json, sys
        args = sys.argv[1:]
        with open({str(tmp_path / "calls.jsonl")!r}, "a") as calls:
            calls.write(json.dumps(args) + "\\n")
        service = args[args.index("--vulnerability-service") + 1]
        answers = json.loads({json.dumps(json.dumps(answers))})
        code, report, stderr = answers[service]
        if report is not None:
            print(json.dumps({{"dependencies": report, "fixes": []}}))
        sys.stderr.write(stderr)
        sys.exit(code)
        """)
    )
    script.chmod(0o755)
    return script


Answers = dict[str, tuple[int, object, str]]


def run_audit(tmp_path: Path, answers: Answers, *extra: str) -> subprocess.CompletedProcess[str]:
    lock = tmp_path / "runtime.lock"
    lock.write_text(f"jinja2==3.1.2 \\\n    {H}\nhttpx==0.28.1 \\\n    {H}\n")
    script = fake_pip_audit(tmp_path, answers)
    command = [sys.executable, "-m", "supplychain.audit", str(lock), "--pip-audit", str(script)]
    command += ["--ignore-file", str(tmp_path / "audit-ignore.txt"), *extra]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False, cwd=ROOT)


def calls(tmp_path: Path) -> list[list[str]]:
    return [json.loads(line) for line in (tmp_path / "calls.jsonl").read_text().splitlines()]


def test_a_known_vulnerability_fails_and_names_the_advisory_and_the_fix(tmp_path: Path) -> None:
    done = run_audit(tmp_path, {"pypi": (1, [JINJA_CVE, clean("httpx", "0.28.1")], "Found 1 known vulnerability\n")})
    assert done.returncode == 1, done
    assert "FAILED: 1 known vulnerabilities" in done.stderr
    assert "jinja2 3.1.2: GHSA-h5c8-rqwp-cp95 (CVE-2024-22195); fixed in 3.1.3" in done.stderr
    # The locks themselves are audited: exact pins, nothing installed or resolved.
    (args,) = calls(tmp_path)
    assert (
        "--disable-pip" in args
        and args[args.index("--aliases") + 1] == "on"
        and args[args.index("--requirement") + 1].endswith("runtime.lock")
    )


def test_no_vulnerability_passes_quietly(tmp_path: Path) -> None:
    done = run_audit(tmp_path, {"pypi": (0, [clean("jinja2", "3.1.4"), clean("httpx", "0.28.1")], "")})
    assert done.returncode == 0, done
    assert "2 locked packages audited, no known vulnerabilities" in done.stdout
    assert "WARNING" not in done.stderr
    assert len(calls(tmp_path)) == 1, "a complete answer from the first service is enough"


def test_every_service_unreachable_is_a_warning_not_a_failure(tmp_path: Path) -> None:
    done = run_audit(tmp_path, {"pypi": (1, None, OFFLINE_TRACEBACK), "osv": (1, None, OFFLINE_TRACEBACK)})
    assert done.returncode == 0, done
    assert "WARNING: vulnerability service 'pypi' could not be reached" in done.stderr
    assert "WARNING: vulnerability service 'osv' could not be reached" in done.stderr
    assert "no vulnerability service could be reached" in done.stderr
    assert "nothing could be audited" in done.stdout


def test_a_service_without_answers_is_a_warning_and_the_next_service_is_asked(tmp_path: Path) -> None:
    pypi = [skipped("jinja2", "3.1.2"), skipped("httpx", "0.28.1")]
    done = run_audit(tmp_path, {"pypi": (0, pypi, ""), "osv": (1, None, OFFLINE_TRACEBACK)})
    assert done.returncode == 0, done
    assert "WARNING: 2 of 2 locked packages could not be audited" in done.stderr
    assert [a[a.index("--vulnerability-service") + 1] for a in calls(tmp_path)] == ["pypi", "osv"]


def test_a_vulnerability_found_by_the_second_service_still_fails(tmp_path: Path) -> None:
    pypi = [skipped("jinja2", "3.1.2"), clean("httpx", "0.28.1")]
    done = run_audit(tmp_path, {"pypi": (0, pypi, ""), "osv": (1, [JINJA_CVE, clean("httpx", "0.28.1")], "")})
    assert done.returncode == 1, done
    assert "GHSA-h5c8-rqwp-cp95" in done.stderr and "could not be audited" not in done.stderr


def test_an_ignored_advisory_needs_a_reason_and_then_passes(tmp_path: Path) -> None:
    answers: Answers = {"pypi": (1, [JINJA_CVE, clean("httpx", "0.28.1")], "")}
    (tmp_path / "audit-ignore.txt").write_text("CVE-2024-22195\n")
    assert run_audit(tmp_path, answers).returncode == 2
    accepted = "# accepted advisories\nCVE-2024-22195  # xmlattr unused; until 2027-01\n"
    (tmp_path / "audit-ignore.txt").write_text(accepted)
    done = run_audit(tmp_path, answers)
    assert done.returncode == 0, done
    assert "ignored" in done.stderr and "GHSA-h5c8-rqwp-cp95" in done.stderr


def test_any_other_pip_audit_failure_fails(tmp_path: Path) -> None:
    error = "ERROR:pip_audit._cli:requirement file is malformed: line 3\n"
    done = run_audit(tmp_path, {"pypi": (1, None, error)})
    assert done.returncode == 2, done
    assert "requirement file is malformed" in done.stderr


@pytest.mark.parametrize("service", ["pypi", "osv"])
def test_one_service_can_be_chosen(tmp_path: Path, service: str) -> None:
    answers: Answers = {service: (0, [clean("jinja2", "3.1.4"), clean("httpx", "0.28.1")], "")}
    done = run_audit(tmp_path, answers, "--service", service)
    assert done.returncode == 0, done
    assert [a[a.index("--vulnerability-service") + 1] for a in calls(tmp_path)] == [service]
