"""The soak's verdict (bench/soak.py) on made-up samples: each failure it exists to catch, caught."""

from __future__ import annotations

from bench.soak import Sample, SoakResult, verdict


def steady(rss: list[float], tasks: list[float] | None = None, fds: list[int] | None = None) -> list[Sample]:
    tasks = tasks or [50.0] * len(rss)
    fds = fds or [60] * len(rss)
    return [Sample(60.0 + 10 * i, r, f, t, 1.0) for i, (r, t, f) in enumerate(zip(rss, tasks, fds, strict=True))]


def result(**samples: list[Sample]) -> SoakResult:
    r = SoakResult(seconds=600.0, dispatched=10, accepted=10)
    r.samples = samples
    r.idle_before = {name: Sample(0, 80, 20, 4, 0) for name in samples}
    r.idle_after = {name: Sample(700, 90, 22, 5, 1) for name in samples}
    return r


FLAT = [100.0] * 12


def test_a_steady_run_passes() -> None:
    assert verdict(result(edge=steady(FLAT))) == []


def test_lost_duplicated_and_unexpected_messages_fail() -> None:
    r = result(edge=steady(FLAT))
    r.lost, r.duplicated, r.unexpected = ["soak1"], ["soak2"], ["soak3"]
    problems = " ".join(verdict(r))
    assert "1 messages lost" in problems and "duplicated" in problems and "without 250" in problems


def test_rss_growth_over_ten_percent_fails() -> None:
    assert verdict(result(edge=steady([100.0] * 4 + [105.0] * 4 + [115.0] * 4)))
    assert verdict(result(edge=steady([100.0] * 4 + [105.0] * 4 + [108.0] * 4))) == []


def test_a_climbing_count_fails_but_in_flight_noise_does_not() -> None:
    climbing = [40.0 + 10 * i for i in range(12)]
    assert any("tasks kept climbing" in p for p in verdict(result(edge=steady(FLAT, tasks=climbing))))
    noisy = [40.0, 90.0, 60.0, 45.0] * 3
    assert verdict(result(edge=steady(FLAT, tasks=noisy))) == []


def test_counts_not_back_to_idle_fail() -> None:
    r = result(forwarder=steady(FLAT))
    r.idle_after["forwarder"] = Sample(700, 90, 60, 5, 1)
    assert any("60 fds once idle again, 20 before" in p for p in verdict(r))


def test_unanswered_messages_fail() -> None:
    r = result(edge=steady(FLAT))
    r.dispatched = 11
    assert any("never answered" in p for p in verdict(r))
