"""Known vulnerabilities in the locked packages: pip-audit over requirements/*.lock, tolerant of being offline.

    python -m supplychain.audit requirements/dev.lock requirements/runtime.lock requirements/codegen.lock

pip-audit checks the exact pins of the lock files (`--disable-pip`: nothing is installed or resolved, the hashes make
the set exact) against a vulnerability service. Verdict:

- a known vulnerability in any locked package: exit 1, with the package, version, advisory and fixed versions
  (unless its id or an alias is listed in the ignore file, with a reason: `requirements/audit-ignore.txt`);
- a service that cannot be reached (no network, DNS, proxy, TLS, timeout, 5xx) or that has no answer for a package
  (PyPI answers 404 for a release it does not know): a WARNING naming how many packages went unaudited, exit 0;
- anything else pip-audit fails on (a malformed lock file, an unknown option): exit 2 with its message.

Services are tried in order (`--service`, default PyPI then OSV): a package that one could not answer for is asked of
the next, so one reachable service is enough.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_SERVICES = ("pypi", "osv")
DEFAULT_IGNORE_FILE = Path("requirements/audit-ignore.txt")
# How a network failure shows in pip-audit's error output (requests' exceptions, pip-audit's own ServiceError).
_UNREACHABLE = re.compile(
    r"requests\.exceptions\.(ConnectionError|ProxyError|SSLError|ConnectTimeout|ReadTimeout|Timeout|RetryError)"
    r"|ServiceError|Max retries exceeded|Failed to resolve|Name or service not known|Temporary failure in name"
    r"|Connection refused|Network is unreachable|timed out|Could not connect|network may be blocking",
)


@dataclass(frozen=True)
class Vulnerability:
    package: str
    version: str
    id: str
    aliases: tuple[str, ...]
    fix_versions: tuple[str, ...]

    def line(self) -> str:
        fixed = ", ".join(self.fix_versions) or "no fixed release"
        aliases = f" ({', '.join(self.aliases)})" if self.aliases else ""
        return f"{self.package} {self.version}: {self.id}{aliases}; fixed in {fixed}"


@dataclass
class Report:
    audited: set[str] = field(default_factory=set)
    unaudited: dict[str, str] = field(default_factory=dict)
    vulnerabilities: list[Vulnerability] = field(default_factory=list)
    ignored: list[Vulnerability] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


class AuditError(Exception):
    """pip-audit failed for a reason other than an unreachable service."""


def read_ignore_file(path: Path) -> set[str]:
    """Advisory ids to accept, one a line, each followed by `# why, and until when` (required)."""
    if not path.exists():
        return set()
    ids: set[str] = set()
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        vuln_id, _, reason = line.partition("#")
        if not reason.strip():
            raise AuditError(f"{path}:{number}: an ignored advisory needs a reason after '#': {line!r}")
        ids.add(vuln_id.strip())
    return ids


def _run_pip_audit(
    pip_audit: Sequence[str], service: str, locks: Sequence[Path], timeout: float
) -> tuple[int, str, str]:
    command = [*pip_audit, "--disable-pip", "--format", "json", "--progress-spinner", "off"]
    command += ["--aliases", "on", "--vulnerability-service", service, "--timeout", "15"]
    for lock in locks:
        command += ["--requirement", str(lock)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)  # noqa: S603
    except subprocess.TimeoutExpired:
        return -1, "", f"pip-audit did not finish within {timeout:.0f} s (timed out)"
    except FileNotFoundError as error:
        raise AuditError(f"pip-audit not found ({error}); `make .venv/.installed` installs it") from error
    return done.returncode, done.stdout, done.stderr


def _parse(stdout: str) -> list[dict[str, object]] | None:
    try:
        document = json.loads(stdout)
    except ValueError:
        return None
    dependencies = document.get("dependencies") if isinstance(document, dict) else None
    return dependencies if isinstance(dependencies, list) else None


def _strings(value: object) -> tuple[str, ...]:
    return tuple(str(item) for item in value) if isinstance(value, list) else ()


def audit(
    locks: Sequence[Path],
    *,
    pip_audit: Sequence[str],
    services: Sequence[str] = DEFAULT_SERVICES,
    ignore: set[str] | None = None,
    timeout: float = 600.0,
) -> Report:
    ignore = ignore or set()
    report = Report()
    for service in services:
        code, stdout, stderr = _run_pip_audit(pip_audit, service, locks, timeout)
        dependencies = _parse(stdout)
        if dependencies is None:
            message = (stderr.strip().splitlines() or [f"exit status {code}, no output"])[-1]
            if code == -1 or _UNREACHABLE.search(stderr):
                report.warnings.append(f"vulnerability service {service!r} could not be reached: {message}")
                continue
            raise AuditError(f"pip-audit failed with service {service!r} (exit status {code}): {stderr.strip()}")
        for dependency in dependencies:
            name, version = str(dependency.get("name", "?")), str(dependency.get("version", "?"))
            if "skip_reason" in dependency:
                if name not in report.audited:
                    report.unaudited[name] = f"{service}: {dependency['skip_reason']}"
                continue
            report.audited.add(name)
            report.unaudited.pop(name, None)
            vulns = dependency.get("vulns")
            for vuln in vulns if isinstance(vulns, list) else []:
                aliases, fixed = _strings(vuln.get("aliases")), _strings(vuln.get("fix_versions"))
                found = Vulnerability(name, version, str(vuln.get("id")), aliases, fixed)
                if found in report.vulnerabilities or found in report.ignored:
                    continue
                accepted = {found.id, *found.aliases} & ignore
                (report.ignored if accepted else report.vulnerabilities).append(found)
        if not report.unaudited and report.audited:
            break
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("locks", nargs="+", type=Path, help="hashed requirement files (requirements/*.lock)")
    parser.add_argument("--service", action="append", choices=DEFAULT_SERVICES, help="pypi, osv (repeatable)")
    parser.add_argument("--ignore-file", type=Path, default=DEFAULT_IGNORE_FILE)
    parser.add_argument(
        "--pip-audit", default=shlex.join([sys.executable, "-m", "pip_audit"]), help="the pip-audit command line"
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds for one pip-audit run")
    options = parser.parse_args(argv)
    try:
        report = audit(
            options.locks,
            pip_audit=shlex.split(options.pip_audit),
            services=options.service or DEFAULT_SERVICES,
            ignore=read_ignore_file(options.ignore_file),
            timeout=options.timeout,
        )
    except AuditError as error:
        print(f"audit: ERROR: {error}", file=sys.stderr)
        return 2
    for warning in report.warnings:
        print(f"audit: WARNING: {warning}", file=sys.stderr)
    for vuln in report.ignored:
        print(f"audit: ignored ({options.ignore_file}): {vuln.line()}", file=sys.stderr)
    if report.unaudited:
        total = len(report.audited) + len(report.unaudited)
        first = sorted(report.unaudited.items())[0]
        print(
            f"audit: WARNING: {len(report.unaudited)} of {total} locked packages could not be audited "
            f"(no vulnerability service answered for them; e.g. {first[0]}: {first[1]})",
            file=sys.stderr,
        )
    elif not report.audited:
        print("audit: WARNING: no vulnerability service could be reached", file=sys.stderr)
    if report.vulnerabilities:
        count = len(report.vulnerabilities)
        print(f"audit: FAILED: {count} known vulnerabilities in locked packages:", file=sys.stderr)
        for vuln in report.vulnerabilities:
            print(f"  {vuln.line()}", file=sys.stderr)
        print(
            "Raise the pin (make lock LOCK_ARGS='--upgrade-package NAME') or, with a reason, list the id in "
            f"{options.ignore_file}.",
            file=sys.stderr,
        )
        return 1
    if report.audited:
        print(f"audit: {len(report.audited)} locked packages audited, no known vulnerabilities")
    else:
        print("audit: nothing could be audited (see the warnings above); not a failure")
    return 0


if __name__ == "__main__":
    sys.exit(main())
