"""The yardstick: a bare aiosmtpd server (STARTTLS, AUTH accepted after TLS, 250 to every message, nothing else) in a
process of its own, so `make bench` measures it with the same client, in the same run, as the gateway.

    python -m bench.bare_server PORT CERT_FILE KEY_FILE
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import sys
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult


class Accept:
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return "250 2.0.0 OK"


def accept_any(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
    return AuthResult(success=True)


async def serve(port: int, cert: str, key: str) -> None:
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)

    def session() -> SMTP:
        return SMTP(Accept(), tls_context=tls, require_starttls=True, authenticator=accept_any, auth_require_tls=True)

    server = await asyncio.get_running_loop().create_server(session, "127.0.0.1", port)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    logging.getLogger("mail.log").setLevel(logging.ERROR)  # aiosmtpd warns once per AUTH (Session.login_data)
    asyncio.run(serve(int(sys.argv[1]), sys.argv[2], sys.argv[3]))
