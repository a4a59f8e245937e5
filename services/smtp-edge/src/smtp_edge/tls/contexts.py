"""Server TLS contexts (TLS 1.2+, forward-secret AEAD ciphers) that pick up renewed certificates."""

from __future__ import annotations

import asyncio
import os
import ssl

import structlog

log = structlog.get_logger(__name__)

# TLS 1.2 suites; TLS 1.3 suites are all modern and configured by OpenSSL itself.
_TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL:!MD5:!DSS:!SHA1"


def server_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(_TLS12_CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    context.load_cert_chain(cert_file, key_file)
    return context


class CertificateReloader:
    """Reloads the chain into the SAME context objects: new handshakes get the new certificate, open
    connections keep theirs, nothing restarts."""

    def __init__(self, contexts: list[ssl.SSLContext], cert_file: str, key_file: str, interval: float) -> None:
        self._contexts = contexts
        self._cert_file = cert_file
        self._key_file = key_file
        self._interval = interval
        self._stamp = self._current_stamp()
        self._task: asyncio.Task[None] | None = None

    def _current_stamp(self) -> tuple[float, float, int, int]:
        cert, key = os.stat(self._cert_file), os.stat(self._key_file)
        return (cert.st_mtime, key.st_mtime, cert.st_ino, key.st_ino)

    def reload_if_changed(self) -> bool:
        try:
            stamp = self._current_stamp()
        except OSError as exc:
            log.warning("tls certificate not readable; keeping the loaded one", error=str(exc))
            return False
        if stamp == self._stamp:
            return False
        try:
            for context in self._contexts:
                context.load_cert_chain(self._cert_file, self._key_file)
        except (OSError, ssl.SSLError) as exc:
            # A half-written renewal (cert and key out of step) is retried at the next tick.
            log.warning("tls certificate reload failed; keeping the loaded one", error=str(exc))
            return False
        self._stamp = stamp
        log.info("tls certificate reloaded", cert_file=self._cert_file)
        return True

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            self.reload_if_changed()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
