"""`python -m smtp_edge`: the SMTP edge, configured from the environment."""

from __future__ import annotations

import asyncio

from gateway_common.logging import configure_logging
from smtp_edge.app import serve
from smtp_edge.config import EdgeSettings


def main() -> None:
    settings = EdgeSettings()
    configure_logging("smtp-edge", settings.log_level)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
