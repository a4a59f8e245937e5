"""`python -m forwarder`: the gRPC forwarder, configured from the environment."""

from __future__ import annotations

from forwarder.app import serve
from forwarder.config import ForwarderSettings
from gateway_common import event_loop
from gateway_common.allocator import fix_mmap_threshold
from gateway_common.logging import configure_logging
from gateway_common.loop_metrics import watch_event_loop


async def run(settings: ForwarderSettings) -> None:
    watch_event_loop()
    await serve(settings)


def main() -> None:
    settings = ForwarderSettings()
    fix_mmap_threshold(settings.malloc_mmap_threshold_bytes)
    configure_logging("forwarder", settings.log_level)
    event_loop.run(run(settings), settings.event_loop)  # uvloop unless EVENT_LOOP=asyncio


if __name__ == "__main__":
    main()
