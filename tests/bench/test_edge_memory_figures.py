"""The edge memory bench's figures (bench/edge_memory.py) on made-up readings."""

from __future__ import annotations

import pytest

from bench.edge_memory import Peak, per_message, slope


def test_the_peak_is_the_highest_reading_above_the_first() -> None:
    peak = Peak(100.0)
    for reading in (140.0, 180.0, 120.0, 99.0):
        peak.feed(reading)
    assert (peak.idle, peak.peak, peak.above_idle) == (100.0, 180.0, 80.0)


def test_a_process_that_only_shrank_has_nothing_above_idle() -> None:
    peak = Peak(100.0)
    peak.feed(90.0)
    assert peak.above_idle == 0.0


def test_per_message_divides_by_the_messages_in_flight_and_their_size() -> None:
    # 4 messages of 20 MiB, 120 MiB above idle at the peak: 30 MiB each, 1.5x the message.
    assert per_message(120.0, 4, 20.0) == pytest.approx(1.5)
    assert per_message(60.0, 1, 20.0) == pytest.approx(3.0)


def test_the_slope_leaves_out_what_the_first_message_pays_once() -> None:
    # The first message: 60 MiB (of which the parse worker's 30, once); 3 more add 30 MiB each = 1.5x of 20 MiB.
    assert slope(60.0, 150.0, 4, 20.0) == pytest.approx(1.5)
    assert slope(60.0, 60.0, 4, 20.0) == 0.0
