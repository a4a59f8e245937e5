"""`python -m cakemail_sandbox`: the Cakemail API sandbox, configured from the environment (SANDBOX_*, LOG_LEVEL)."""

from __future__ import annotations

import asyncio

from cakemail_sandbox.config import SandboxSettings
from cakemail_sandbox.server import serve
from gateway_common.logging import configure_logging


def main() -> None:
    settings = SandboxSettings()
    configure_logging("cakemail-sandbox", settings.log_level)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
