"""End-to-end fixtures shared by several modules."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devstack.certs import DevCertificate
from devstack.stack import Stack, StackPorts


@pytest.fixture(scope="session")
def v1_stack(dev_certificate: DevCertificate, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The stack on the v1 API flavor (CAKEMAIL_API_FLAVOR=v1), for the tests of the v1 payload shape. A module
    opts in by overriding `stack` with it (then its `sandbox` is this stack's too)."""
    logs = tmp_path_factory.mktemp("stack-v1-logs")
    running = Stack(
        StackPorts.ephemeral(), dev_certificate, log_dir=logs, extra_env={"forwarder": {"CAKEMAIL_API_FLAVOR": "v1"}}
    )
    running.start()
    yield running
    codes = running.stop()
    assert all(code == 0 for code in codes.values()), f"unclean exit {codes}; logs in {logs}"
