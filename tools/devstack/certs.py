"""A development CA and server certificate, made once: clients can trust ca.pem or skip verification."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import trustme


@dataclass(frozen=True, slots=True)
class DevCertificate:
    ca_file: Path
    cert_file: Path
    key_file: Path


def ensure_dev_certificate(directory: Path) -> DevCertificate:
    paths = DevCertificate(directory / "ca.pem", directory / "cert.pem", directory / "key.pem")
    if all(p.exists() for p in (paths.ca_file, paths.cert_file, paths.key_file)):
        return paths
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name="Cakemail SMTP Gateway dev CA")
    leaf = ca.issue_cert("localhost", "127.0.0.1", "::1", key_type=trustme.KeyType.RSA)
    ca.cert_pem.write_to_path(str(paths.ca_file))
    leaf.private_key_pem.write_to_path(str(paths.key_file))
    paths.key_file.chmod(0o600)
    # Leaf first, then the CA: the chain a server presents.
    paths.cert_file.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    return paths
