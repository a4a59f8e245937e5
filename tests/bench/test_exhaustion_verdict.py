"""The exhaustion bench's verdict (bench/exhaustion.py) on made-up figures, and its attack messages checked against
what they claim to be (bench/attacks.py): each failure the verdict exists to catch, caught."""

from __future__ import annotations

import email
import gzip
from collections import Counter

from bench.attacks import LINE, PER_IP, Report, big_headers, bomb, nested, reply_key, source_ip
from bench.exhaustion import (
    IDLE_CONNECTION_MIB,
    MAX_CONNECTIONS,
    MESSAGE_SIZE_LIMIT,
    Figures,
    at_the_cap,
    rss_bound,
    shapes,
    table,
    verdict,
)

MAX_ATTACHMENT_BYTES = 10_485_760  # the edge's default decoded-attachment cap


def figures(
    baseline: list[float] | None = None,
    during: list[float] | None = None,
    peak: float = 120.0,
    established: int = 64,
) -> Figures:
    # 64 attacking connections out of a cap of 1024 may take 1/16 of the 1024 MiB the pod has above its baseline:
    # 64 MiB, plus 16 MiB of slack.
    f = Figures("idle", "64 idle TLS connections", connections=64, pod_memory=1124.0, max_connections=1024)
    f.baseline = baseline if baseline is not None else [0.020] * 50
    f.during = during if during is not None else [0.030] * 49 + [0.080]
    f.rss_baseline = {"smtp-edge": 100.0, "forwarder": 100.0}
    f.rss_peak = {"smtp-edge": peak, "forwarder": 95.0}
    f.rss_after = {"smtp-edge": peak, "forwarder": 95.0}
    f.attack = Report("idle", intended=64, established=established, ends=Counter({"open when stopped": 64}))
    return f


def test_a_served_probe_and_bounded_memory_pass() -> None:
    assert verdict(figures()) == []


def test_probe_errors_during_the_attack_fail() -> None:
    f = figures()
    f.during_errors = Counter({"421 4.7.0": 2})
    assert any("probe errors" in p and "421 4.7.0" in p for p in verdict(f))


def test_a_starved_probe_fails_even_without_errors() -> None:
    assert any("starved" in p for p in verdict(figures(during=[])))


def test_p99_over_the_budget_fails_and_under_it_passes() -> None:
    base = [0.060] * 50  # a baseline p99 of 60 ms: 5x is 300 ms, over the floor
    slow = [0.030] * 49 + [0.301]
    assert verdict(figures(baseline=base, during=slow)) == [
        "idle: probe p99 301 ms, 5.0x its baseline (budget 300 ms: 5x, at least 250 ms)"
    ]
    assert verdict(figures(baseline=base, during=[0.030] * 49 + [0.299])) == []


def test_a_fast_baseline_is_held_to_the_floor_not_to_its_ratio() -> None:
    """20 ms alone: 5x would be 100 ms, but the floor allows 250 ms; past it, the verdict fails whatever the ratio."""
    assert verdict(figures(during=[0.030] * 49 + [0.249])) == []
    assert any("probe p99 251 ms, 12.5x" in p for p in verdict(figures(during=[0.030] * 49 + [0.251])))


def test_rss_growth_over_the_attacks_share_of_the_pod_fails_per_service() -> None:
    f = figures(peak=180.0)
    assert rss_bound(f, "smtp-edge") == 80.0 and verdict(f) == []
    problems = verdict(figures(peak=181.0))
    assert problems == ["idle: smtp-edge RSS +81 MiB (bound 80 MiB; 1,396 MiB at 1,024 connections)"]
    f = figures()
    f.rss_peak["forwarder"] = 200.0
    assert any(p.startswith("idle: forwarder RSS +100 MiB") for p in verdict(f))


def test_the_share_shrinks_with_the_baseline_and_the_projection_scales_per_connection() -> None:
    f = figures(peak=164.0)
    f.rss_baseline["smtp-edge"] = 612.0  # 512 MiB left in the pod: 1/16 of it is 32 MiB
    assert rss_bound(f, "smtp-edge") == 48.0
    assert at_the_cap(figures(peak=164.0), "smtp-edge") == 100.0 + 1.0 * 1024
    assert MAX_CONNECTIONS == 2000  # the edge's default cap, read from its settings


def test_a_budgeted_shape_is_judged_against_the_pod_with_the_connection_cap_held_idle() -> None:
    """The message shapes' bytes in flight are capped per process (DATA_BYTES_IN_FLIGHT_LIMIT): their bound is what
    the pod has above the baseline, less the rest of the cap's connections at IDLE_CONNECTION_MIB each (edge)."""
    f = figures(peak=700.0)
    f.budgeted = True
    idle = (1024 - 64) * IDLE_CONNECTION_MIB  # 120 MiB
    assert rss_bound(f, "smtp-edge") == 1124.0 - 100.0 - idle
    assert rss_bound(f, "forwarder") == 1124.0 - 100.0
    assert verdict(f) == [] and at_the_cap(f, "smtp-edge") == 700.0 + idle
    f.rss_peak["smtp-edge"] = 1124.0 - idle + 1  # one MiB more than fits beside the idle connections
    assert verdict(f) == [
        f"idle: smtp-edge RSS +{1124 - idle + 1 - 100:.0f} MiB (bound 904 MiB; 1,125 MiB at 1,024 connections)"
    ]
    f.budgeted = False  # the same growth judged per connection: far over
    assert any("smtp-edge RSS" in p for p in verdict(f))


def test_an_attack_short_of_strength_fails() -> None:
    assert any("short of strength, 7/64" in p for p in verdict(figures(established=7)))


def test_an_unusable_baseline_or_a_missing_report_fails() -> None:
    f = figures(baseline=[])
    assert any("baseline is unusable" in p for p in verdict(f))
    f = figures()
    f.attack = None
    assert verdict(f) == ["idle: no report from the attacker"]


def test_the_table_shows_each_shape_with_its_verdict() -> None:
    good, bad = figures(), figures(peak=400.0)
    bad.label = "other"
    rows = table([good, bad]).splitlines()
    assert len(rows) == 4
    assert rows[2].startswith("| 64 idle TLS connections |") and rows[2].endswith("| pass |")
    assert "FAIL: smtp-edge RSS +300 MiB" in rows[3]
    starved = table([figures(during=[])]).splitlines()[2]
    assert "| - (20) | - (20) | - | 0 / - |" in starved and "probe starved" in starved


def test_the_shapes_at_full_and_smoke_scale() -> None:
    full = {s.name: s.connections for s in shapes()}
    assert full == {
        "idle": 1000,
        "slow-drip": 200,
        "tiny-rcpts": 20,
        "noop-flood": 20,
        "big-headers": 4,
        "nested-mime": 4,
        "base64-bomb": 4,
    }
    assert [s.name for s in shapes(0.01)] == list(full) and all(s.connections >= 1 for s in shapes(0.01))
    # Only the shapes that send messages are held by the bytes in flight budget.
    assert {s.name for s in shapes() if s.budgeted} == {"big-headers", "nested-mime", "base64-bomb"}


def test_attackers_stay_under_the_per_ip_cap() -> None:
    addresses = Counter(source_ip(i) for i in range(1000))
    assert len(addresses) == 1000 // PER_IP and max(addresses.values()) == PER_IP


def test_reply_keys() -> None:
    assert reply_key("452 4.5.3 Too many recipients (at most 100 per message)") == "452 4.5.3"
    assert reply_key("354 End data with <CR><LF>.<CR><LF>") == "354"
    assert reply_key("500 Error: bad syntax") == "500"


def _as_sent(wire: bytes) -> email.message.Message:
    assert wire.endswith(b"\r\n.\r\n")
    return email.message_from_bytes(wire[: -len(b".\r\n")])


def test_the_header_block_fills_the_size_limit_in_legal_lines() -> None:
    wire = big_headers(MESSAGE_SIZE_LIMIT - 4096)
    assert MESSAGE_SIZE_LIMIT - 8192 < len(wire) < MESSAGE_SIZE_LIMIT - 4096
    head, _, body = wire.partition(b"\r\n\r\n")
    assert body == b"body\r\n.\r\n" and max(len(line) for line in head.split(b"\r\n")) == LINE


def test_the_nested_message_is_100_levels_deep() -> None:
    part, depth = _as_sent(nested(100)), 0
    while part.is_multipart():
        payload = part.get_payload()
        assert isinstance(payload, list) and len(payload) == 2
        part, depth = payload[1], depth + 1
    assert depth == 100 and part.get_payload() == "innermost\r\n"


def test_the_bomb_fills_the_limit_and_decodes_to_gzip_that_expands_a_thousandfold() -> None:
    wire = bomb(MESSAGE_SIZE_LIMIT - 4096)
    assert MESSAGE_SIZE_LIMIT - 65536 < len(wire) < MESSAGE_SIZE_LIMIT - 4096
    attachments = [p for p in _as_sent(wire).walk() if p.get_content_type() == "application/gzip"]
    assert len(attachments) == 2
    for attachment in attachments:
        blob = attachment.get_payload(decode=True)
        assert isinstance(blob, bytes) and 9 * 2**20 < len(blob) <= MAX_ATTACHMENT_BYTES
        size = len(gzip.compress(bytes(10 * 2**20), compresslevel=9, mtime=0))
        member = blob[:size]
        assert gzip.decompress(member) == bytes(10 * 2**20)
        assert blob == member * (len(blob) // size)  # whole members only: each 10 MiB of zeros
        assert len(blob) // size * 10 * 2**20 > 900 * len(blob)
