"""Large messages parsed in worker processes, so that their CPU does not take the event loop's GIL.

A thread does not help here: the MIME parse is pure Python and holds the GIL, so every session on the loop waits
while a 25 MB message is parsed (docs/security.md, "Resource exhaustion", item 3). A small process pool (a
'forkserver' context: the workers are forked from a clean server process, never from the running edge with its
sockets and threads) parses them instead; only the bytes in and the parsed message out cross the pipe.

A worker that dies (killed, out of memory) breaks the pool: the messages it held are answered with a temporary
failure (the client keeps them and retries, nothing is lost) and the pool is rebuilt for the next ones.

What crosses the pipe is a pickled copy of the message, made in this process: the pool makes it only when a worker is
free to take it, and lets go of it once it crossed (ParsePool.parse), so that it costs a message's size briefly, not
per message waiting nor for the whole parse (docs/performance.md, "Edge memory per large message").
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import multiprocessing
import os
import signal
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import structlog

from gateway_common.allocator import fix_mmap_threshold
from gateway_mime import ParsedMessage
from gateway_mime.submission import read_submission

log = structlog.get_logger(__name__)

PRELOAD = ["gateway_mime.submission"]  # imported once by the fork server, not by every new worker
# From this size on, the pickled copy of a message handed to a worker is let go of at once (ParsePool.parse): below
# it, what would stay is too small to be worth the extra round trip to the worker.
LET_GO_BYTES = 1024 * 1024


class ParseWorkerLost(Exception):
    """The worker parsing this message died; the message was not parsed (answer with a temporary failure)."""


def _start_worker(nice: int, mmap_threshold: int) -> None:
    # The edge drains on SIGTERM and shuts the pool down itself; a worker that died on the same signal would turn
    # the messages still being parsed during the drain into temporary failures.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Below the event loop's CPU priority: when the cores are busy, the loop's replies to every session go first and
    # the parse of a large message (throughput work, seconds long) takes what is left. No privilege is needed to
    # lower one's own priority, in a container too.
    os.nice(nice)
    # The fork server is a fresh interpreter: the allocator setting is made again here (gateway_common/allocator.py).
    fix_mmap_threshold(mmap_threshold)


def parse_in_worker(
    raw: bytes, mail_from: str, max_attachment_bytes: int | None, message_id_domain: str
) -> tuple[ParsedMessage, str, int]:
    """Runs in a worker: read_submission's result and the worker's pid. Raises MessageRejected, nothing else."""
    parsed, identity = read_submission(
        raw, mail_from, max_attachment_bytes=max_attachment_bytes, message_id_domain=message_id_domain
    )
    return parsed, identity, os.getpid()


class ParsePool:
    def __init__(self, processes: int, *, nice: int = 0, mmap_threshold: int = 0) -> None:
        if processes < 1:
            raise ValueError("a parse pool needs at least one process")
        self._processes = processes
        self._nice = nice
        self._mmap_threshold = mmap_threshold
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(PRELOAD)
        self._executor = self._new_executor()
        self.restarts = 0
        self._free_workers = asyncio.Semaphore(processes)
        self._last_call: concurrent.futures.Future[int] | None = None

    def _new_executor(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self._processes,
            mp_context=self._context,
            initializer=_start_worker,
            initargs=(self._nice, self._mmap_threshold),
        )

    async def start(self) -> None:
        """Starts the workers now (at edge start-up), not on the first large message."""
        await self.worker_pids()

    async def worker_pids(self) -> set[int]:
        """The pids of the workers that answered (as many calls as workers; an idle worker may take two)."""
        loop = asyncio.get_running_loop()
        executor = self._executor
        pids = await asyncio.gather(*(loop.run_in_executor(executor, os.getpid) for _ in range(self._processes)))
        return set(pids)

    async def parse(
        self, raw: bytes, mail_from: str, *, max_attachment_bytes: int | None, message_id_domain: str
    ) -> tuple[ParsedMessage, str, int]:
        """(parsed, identity, the worker's pid); MessageRejected as read_submission raises it; ParseWorkerLost when
        the worker died (the pool is rebuilt)."""
        loop = asyncio.get_running_loop()
        # Handed to the pool only when a worker is free: ProcessPoolExecutor queues a call more than it has workers,
        # and a queued call is a pickled copy of its message, held here while the parse ahead of it runs (a second
        # or more for 20 MB).
        async with self._free_workers:
            executor = self._executor
            try:
                parsing = loop.run_in_executor(
                    executor, parse_in_worker, raw, mail_from, max_attachment_bytes, message_id_domain
                )
                if len(raw) >= LET_GO_BYTES:
                    self._let_go_of_the_pickled_copy(executor)
                return await parsing
            except BrokenProcessPool as broken:
                self._rebuild(executor)
                raise ParseWorkerLost("the parse worker died") from broken

    def _let_go_of_the_pickled_copy(self, executor: ProcessPoolExecutor) -> None:
        """multiprocessing's queue feeder thread keeps the last call it sent, a pickled copy of its message, until it
        sends another (CPython's multiprocessing/queues.py, `_feed`): for the whole parse, and after it for as long
        as the edge stays idle. A call that carries nothing, queued right behind, takes its place once the message
        has crossed the pipe (the worker answers it after the parse: it costs a round trip, no wait)."""
        with contextlib.suppress(RuntimeError):  # shut down or broken (BrokenProcessPool): its feeder goes with it
            self._last_call = executor.submit(os.getpid)

    async def settled(self) -> None:
        """Waits until the last call made to let go of a message was answered."""
        if self._last_call is not None:
            await asyncio.wait([asyncio.wrap_future(self._last_call)])  # answered, failed or cancelled: no raise

    def _rebuild(self, broken: ProcessPoolExecutor) -> None:
        if self._executor is not broken:  # another message held by the same worker already rebuilt it
            return
        self.restarts += 1
        log.error("a parse worker died; the pool is rebuilt", restarts=self.restarts)
        broken.shutdown(wait=False, cancel_futures=True)
        self._executor = self._new_executor()

    async def close(self) -> None:
        """Waits for the parses in flight (drain lets their transactions finish first), then stops the workers."""
        executor = self._executor
        await asyncio.to_thread(executor.shutdown, wait=True, cancel_futures=True)
