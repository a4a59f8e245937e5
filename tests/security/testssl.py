"""Runs Debian's testssl.sh against a loopback TLS server and judges its JSON findings.

The judgement is a pure function of testssl's flat JSON (`--jsonfile`), so what the scan must never see is written
down in one place: a protocol below TLS 1.2, a cipher suite without forward secrecy or without AEAD, or a
certificate finding of MEDIUM severity or worse.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TESTSSL = shutil.which("testssl") or shutil.which("testssl.sh")

# Only the checks the verdict needs: -p protocols, -e every cipher suite the server accepts (key exchange and
# encryption columns), -S server defaults (the certificate). --fs/-E/-P/vulnerabilities are left out: -e already
# names each suite's key exchange, and the rest costs tens of seconds per port.
CHECKS = ("-p", "-e", "-S")
OFFLINE = (
    "--quiet",  # no banner (and the usage terms acknowledged)
    "--warnings",
    "off",  # never stop for a question
    "--color",
    "0",
    "-n",
    "none",  # no DNS lookups at all (rDNS, CAA, MX); the IP is given with --ip
    # --phone-out is NOT given: no CRL download, no OCSP query (testssl's default).
    "--connect-timeout",
    "5",
    "--openssl-timeout",
    "5",
)

OLD_PROTOCOLS = ("SSLv2", "SSLv3", "TLS1", "TLS1_1")
PROBLEM_SEVERITIES = frozenset({"MEDIUM", "HIGH", "CRITICAL"})
# Properties of the development certificate itself, not of the edge: devstack's trustme CA mints a leaf valid for
# ~1000 years with neither CRL nor OCSP URI. A production certificate comes from the operator's CA (docs/security.md).
DEV_CERTIFICATE_FINDINGS = frozenset({"cert_validityPeriod", "cert_revocation"})
AEAD_MARKERS = ("_GCM_", "_CCM", "CHACHA20_POLY1305")
# TLS 1.3 suites (TLS_AES_*, TLS_CHACHA20_*) always use an ephemeral (EC)DHE key exchange.
FORWARD_SECRET_PREFIXES = ("TLS_ECDHE_", "TLS_DHE_", "TLS_AES_", "TLS_CHACHA20_")


@dataclass(frozen=True)
class Finding:
    id: str
    severity: str
    finding: str


def load_findings(path: Path) -> list[Finding]:
    raw: list[Mapping[str, Any]] = json.loads(path.read_text())
    return [Finding(str(item["id"]), str(item["severity"]), str(item["finding"])) for item in raw]


def cipher_iana_name(finding: Finding) -> str:
    """`xc02f   ECDHE-RSA-AES128-GCM-SHA256   ECDH 253   AESGCM   128   TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256`: the
    last column is the IANA name, which says both the key exchange and the mode."""
    return finding.finding.split()[-1]


def problems(findings: Iterable[Finding]) -> list[str]:
    """Every reason the scanned server fails the gateway's TLS policy; [] when it passes."""
    found = list(findings)
    by_id = {f.id: f for f in found}
    reasons: list[str] = []
    fatal = [f for f in found if f.severity == "FATAL" or f.id == "scanProblem"]
    reasons += [f"scan problem {f.id}: {f.finding}" for f in fatal]
    # A scan that saw nothing must not pass: the protocol and cipher findings have to be there.
    for needed in ("TLS1_2", *OLD_PROTOCOLS):
        if needed not in by_id:
            reasons.append(f"no {needed} finding: the scan did not run its protocol checks")
    for protocol in OLD_PROTOCOLS:
        if protocol in by_id and not by_id[protocol].finding.startswith("not offered"):
            reasons.append(f"{protocol} {by_id[protocol].finding}")
    ciphers = [f for f in found if f.id.startswith("cipher_x")]
    if not ciphers:
        reasons.append("no cipher_x findings: the scan did not list the accepted cipher suites")
    for cipher in ciphers:
        name = cipher_iana_name(cipher)
        if not name.startswith(FORWARD_SECRET_PREFIXES):
            reasons.append(f"cipher without forward secrecy: {name}")
        if not any(marker in name for marker in AEAD_MARKERS):
            reasons.append(f"cipher without AEAD: {name}")
    if "cert_chain_of_trust" not in by_id:
        reasons.append("no cert_chain_of_trust finding: the scan did not check the certificate")
    for f in found:
        if f.id.startswith("cert") and f.severity in PROBLEM_SEVERITIES and f.id not in DEV_CERTIFICATE_FINDINGS:
            reasons.append(f"certificate {f.id} ({f.severity}): {f.finding}")
    return reasons


def scan_command(port: int, json_file: Path, ca_file: Path, *, starttls: bool, host: str = "localhost") -> list[str]:
    assert TESTSSL is not None, "testssl.sh is not installed (make test installs Debian's testssl.sh)"
    starttls_args: Sequence[str] = ("--starttls", "smtp") if starttls else ()
    return [
        TESTSSL,
        *OFFLINE,
        "--ip",
        "127.0.0.1",
        *starttls_args,
        *CHECKS,
        # The dev CA is ours: trusted, so the chain of trust is really verified rather than excused.
        "--add-ca",
        str(ca_file),
        "--jsonfile",
        str(json_file),
        f"{host}:{port}",
    ]


def start_scan(port: int, json_file: Path, ca_file: Path, *, starttls: bool) -> subprocess.Popen[bytes]:
    command = scan_command(port, json_file, ca_file, starttls=starttls)
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def finish_scan(process: subprocess.Popen[bytes], json_file: Path, timeout: float = 120) -> list[Finding]:
    output, _ = process.communicate(timeout=timeout)
    assert json_file.exists(), f"testssl wrote no JSON (exit {process.returncode}):\n{output.decode(errors='replace')}"
    return load_findings(json_file)
