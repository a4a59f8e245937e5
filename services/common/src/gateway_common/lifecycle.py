"""Both services run the same way: start, serve until SIGTERM or SIGINT, then stop gracefully."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import signal
from typing import Protocol

import structlog

from gateway_common.ops_http import PortUnavailable

log = structlog.get_logger(__name__)

# A listener that cannot bind: a configuration problem to report in one line, not a traceback.
_BIND_ERRNOS = frozenset({errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES})

EXIT_CANNOT_START = 1


class Service(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


async def serve_until_signalled(service: Service) -> None:
    """Raises SystemExit(EXIT_CANNOT_START) after logging which address could not be bound, if one could not."""
    try:
        await service.start()
    except (PortUnavailable, OSError) as exc:
        if isinstance(exc, OSError) and exc.errno not in _BIND_ERRNOS:
            raise
        log.error("cannot start", reason=str(exc))
        # Whatever did start (another listener, a gRPC server) is closed before the process exits.
        with contextlib.suppress(Exception):
            await service.stop()
        raise SystemExit(EXIT_CANNOT_START) from None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await service.stop()
