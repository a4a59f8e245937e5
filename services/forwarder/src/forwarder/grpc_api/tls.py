"""TLS, and mutual TLS, on the gRPC port: certificates from files, picked up again when the files change (a
renewed certificate, a rotated client CA) without a restart, as the SMTP edge does with its own certificate."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

import grpc
import structlog

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class GrpcTlsFiles:
    cert_file: str
    key_file: str
    # Set: clients must present a certificate signed by this CA (mTLS).
    client_ca_file: str = ""


class ReloadingServerCredentials:
    """gRPC asks `_fetch` at every new handshake; it reads the files again only when one of them changed (stat),
    and keeps serving the loaded certificate when the new files cannot be read (a half-written renewal)."""

    def __init__(self, files: GrpcTlsFiles) -> None:
        self._files = files
        self._lock = threading.Lock()
        self._signature = self._stat()
        self._initial = self._load()

    def credentials(self) -> grpc.ServerCredentials:
        return grpc.dynamic_ssl_server_credentials(
            self._initial, self._fetch, require_client_authentication=bool(self._files.client_ca_file)
        )

    def _paths(self) -> list[str]:
        return [p for p in (self._files.cert_file, self._files.key_file, self._files.client_ca_file) if p]

    def _stat(self) -> tuple[tuple[float, int], ...]:
        return tuple((os.stat(p).st_mtime, os.stat(p).st_ino) for p in self._paths())

    def _load(self) -> grpc.ServerCertificateConfiguration:
        files = self._files
        pair = (Path(files.key_file).read_bytes(), Path(files.cert_file).read_bytes())
        roots = Path(files.client_ca_file).read_bytes() if files.client_ca_file else None
        return grpc.ssl_server_certificate_configuration([pair], root_certificates=roots)

    def _fetch(self) -> grpc.ServerCertificateConfiguration | None:
        with self._lock:
            try:
                signature = self._stat()
                if signature == self._signature:
                    return None
                config = self._load()
            except Exception as exc:  # keep what is loaded; the next handshake looks again
                log.warning("grpc tls files not readable; keeping the loaded ones", error=str(exc))
                return None
            self._signature = signature
            log.info("grpc tls certificate reloaded", cert_file=self._files.cert_file)
            return config
