"""`python -m forwarder`: the gRPC forwarder, configured from the environment."""

from __future__ import annotations

import asyncio

from forwarder.app import serve
from forwarder.config import ForwarderSettings
from gateway_common.logging import configure_logging


def main() -> None:
    settings = ForwarderSettings()
    configure_logging("forwarder", settings.log_level)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
