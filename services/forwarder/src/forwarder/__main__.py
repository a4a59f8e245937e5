"""`python -m forwarder`: the gRPC forwarder, configured from the environment."""

from __future__ import annotations

import uvloop

from forwarder.app import serve
from forwarder.config import ForwarderSettings
from gateway_common.logging import configure_logging
from gateway_common.loop_metrics import watch_event_loop


async def run(settings: ForwarderSettings) -> None:
    watch_event_loop()
    await serve(settings)


def main() -> None:
    settings = ForwarderSettings()
    configure_logging("forwarder", settings.log_level)
    # uvloop (libuv, in C) instead of asyncio's default loop: less CPU per message for the same code
    # (docs/performance.md); TLS, STARTTLS and grpc.aio run on it unchanged (tests/e2e/test_event_loop.py).
    uvloop.run(run(settings))


if __name__ == "__main__":
    main()
