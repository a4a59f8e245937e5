"""Fixtures of the security tests: stacks configured for fuzzing, and the example budget.

`make test` runs every fuzz test with a small, bounded number of examples; `make fuzz` sets FUZZ_EXAMPLES (and the
atheris run's FUZZ_SECONDS) for a longer run. Both use the same tests.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from devstack.certs import DevCertificate
from devstack.stack import Stack, StackPorts
from tests.conftest import SandboxView


def fuzz_examples(default: int) -> int:
    """The example budget of one fuzz test: `default` under make test, FUZZ_EXAMPLES under make fuzz."""
    raw = os.environ.get("FUZZ_EXAMPLES", "").strip()
    return int(raw) if raw else default


def fuzz_derandomized() -> bool:
    """make test runs the same examples every time (deterministic, so a new finding fails for everyone at once);
    make fuzz (FUZZ_EXAMPLES set) explores at random."""
    return not os.environ.get("FUZZ_EXAMPLES", "").strip()


# Failed AUTHs are most of what a fuzzer sends: the throttle (tested in tests/e2e/test_limits_and_lifecycle.py)
# would put 127.0.0.1 in cooldown after five and turn every later example into a 421.
FUZZ_EDGE = {"AUTH_FAILURE_LIMIT": "1000000", "COMMAND_TIMEOUT_SECONDS": "20"}


@pytest.fixture(scope="module")  # one module uses it: its processes end with it
def fuzz_stack(dev_certificate: DevCertificate, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    running = Stack(
        StackPorts.ephemeral(),
        dev_certificate,
        log_dir=tmp_path_factory.mktemp("fuzz-logs"),
        extra_env={"edge": FUZZ_EDGE},
    )
    with running:
        yield running
    codes = {service.name: service.process.returncode for service in running.services if service.process}
    assert all(code == 0 for code in codes.values()), f"unclean exit after fuzzing: {codes}"


@pytest.fixture(scope="module")
def proxy_fuzz_stack(dev_certificate: DevCertificate, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    running = Stack(
        StackPorts.ephemeral(),
        dev_certificate,
        log_dir=tmp_path_factory.mktemp("proxy-fuzz-logs"),
        extra_env={
            "edge": {**FUZZ_EDGE, "PROXY_PROTOCOL": "true", "PROXY_PROTOCOL_TIMEOUT_SECONDS": "1"},
        },
    )
    with running:
        yield running


@pytest.fixture
def fuzz_sandbox(fuzz_stack: Stack) -> SandboxView:
    return SandboxView.cleared(fuzz_stack.sandbox_url)
