"""`make bench-exhaustion` in miniature against a real stack (edge + forwarder + sandbox, real TLS, PROXY headers):
every shape attacks at full (tiny) strength beside the probe and leaves figures for the table. No latency or memory
figure is judged here: that is the benchmark's job (bench/exhaustion.py), on its full counts."""

from __future__ import annotations

import asyncio

import pytest

from bench.exhaustion import SERVICES, run, shapes, table

pytestmark = pytest.mark.e2e

SIZE_LIMIT = 1024 * 1024  # the message shapes fill the size limit: a small one keeps this test short


def test_every_shape_attacks_beside_the_probe_and_leaves_figures() -> None:
    selected = shapes(0.01, SIZE_LIMIT)
    results = asyncio.run(
        run(selected, hold=0.5, baseline=0.5, size_limit=SIZE_LIMIT, stack_per_shape=False, settle=0.2)
    )
    assert [f.shape for f in results] == [s.name for s in selected]
    for shape, f in zip(selected, results, strict=True):
        assert f.attack is not None, shape.name
        assert f.attack.intended == shape.connections and f.attack.established == shape.connections, f.attack
        assert f.baseline and not f.baseline_errors, (shape.name, f.baseline_errors)
        assert f.during or f.during_errors, shape.name  # the probe ran during the attack
        for service in SERVICES:
            assert f.rss_baseline[service] > 0 and f.rss_peak[service] > 0 and f.rss_after[service] > 0
    rows = table(results).splitlines()[2:]
    assert [row.split(" | ")[0] for row in rows] == [f"| {s.label}" for s in selected]
