"""`python -m cakemail_sandbox`: the Cakemail API sandbox, configured from the environment (SANDBOX_*, LOG_LEVEL,
EVENT_LOOP)."""

from __future__ import annotations

from cakemail_sandbox.config import SandboxSettings
from cakemail_sandbox.server import serve
from gateway_common import event_loop
from gateway_common.logging import configure_logging


def main() -> None:
    settings = SandboxSettings()
    configure_logging("cakemail-sandbox", settings.log_level)
    event_loop.run(serve(settings), settings.event_loop)  # uvloop unless EVENT_LOOP=asyncio


if __name__ == "__main__":
    main()
