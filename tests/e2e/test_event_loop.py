"""Both services run on uvloop (docs/performance.md): the loop is chosen in each `__main__`, so this reads the
running processes' memory maps rather than trusting the code. The client matrix (STARTTLS and implicit TLS from real
clients) and every other end-to-end test run against these same processes."""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack.stack import Stack
from tests.conftest import metric

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("service", ["edge", "forwarder"])
def test_service_runs_on_uvloop(stack: Stack, service: str) -> None:
    running = {s.name: s for s in stack.services}
    matches = [name for name in running if service in name]
    assert len(matches) == 1, f"no single {service} among {sorted(running)}"
    process = running[matches[0]].process
    assert process is not None and process.poll() is None
    maps = Path(f"/proc/{process.pid}/maps").read_text()
    assert "/uvloop/loop." in maps, f"{matches[0]} has not loaded uvloop's event loop"


@pytest.mark.parametrize("service", ["edge", "forwarder"])
def test_asyncio_tasks_are_counted_on_metrics(stack: Stack, service: str) -> None:
    port = stack.ports.edge_http if service == "edge" else stack.ports.forwarder_http
    assert metric(port, "asyncio_tasks") >= 1  # at least the task serving this very scrape
