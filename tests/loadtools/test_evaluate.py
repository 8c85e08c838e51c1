"""The pass/fail table and the HTML report, from synthetic Artillery results."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from tools.load import evaluate, report, svg
from tools.load import scenario as scenarios

T0 = 1_800_000_000_000  # ms


def summary(p99: float, count: int = 100) -> dict[str, float]:
    return {
        "min": 0.5,
        "max": p99 * 1.5,
        "count": count,
        "mean": p99 / 4,
        "p50": p99 / 5,
        "median": p99 / 5,
        "p75": p99 / 3,
        "p90": p99 / 2,
        "p95": p99 * 0.8,
        "p99": p99,
        "p999": p99 * 1.2,
    }


def artillery(p99s: Sequence[float], counters: Mapping[str, float] | None = None) -> dict[str, Any]:
    """One 10-s period per entry of ``p99s`` (ms, for the three target latencies)."""
    metrics = (
        "collabgate.update_ack_ms",
        "collabgate.peer_delivery_ms",
        "collabgate.lock_acquire_ms",
    )
    intermediate = [
        {
            "period": T0 + 10_000 * i,
            "firstMetricAt": T0 + 10_000 * i,
            "lastMetricAt": T0 + 10_000 * i + 9_999,
            "counters": {"collabgate.requests.Y_UPDATE": 1000, "collabgate.frames_sent": 1000},
            "summaries": {m: summary(p99) for m in metrics},
        }
        for i, p99 in enumerate(p99s)
    ]
    totals = {
        "collabgate.requests.Y_UPDATE": 1000.0 * len(p99s),
        "collabgate.sessions.opened": 100,
        "vusers.failed": 0,
        **(counters or {}),
    }
    return {
        "aggregate": {
            "firstMetricAt": T0,
            "counters": totals,
            "summaries": {m: summary(max(p99s)) for m in metrics},
        },
        "intermediate": intermediate,
    }


def samples(
    connections: Sequence[float], rss: Sequence[float] | None = None, every: float = 10
) -> list[dict[str, Any]]:
    rows = []
    for i, c in enumerate(connections):
        row: dict[str, Any] = {"t": T0 / 1000 + i * every, "connections": c, "cpu_pct": 50.0}
        if rss is not None:
            row["rss_mb"] = rss[i]
        rows.append(row)
    return rows


RUN = {
    "gateway": {"alive_at_end": True, "health_at_end": 200, "exit_code": 0},
    "started_at": T0 / 1000 - 3,
    "finished_at": T0 / 1000 + 500,
}


def by_name(e: evaluate.Evaluation) -> dict[str, evaluate.Check]:
    return {c.name: c for c in e.checks}


def test_a_run_within_targets_passes() -> None:
    plan = scenarios.load("stress")
    e = evaluate.evaluate(plan, artillery([20, 30, 25] * 14), samples([1000] * 40), RUN)
    failed = [c for c in e.checks if not c.passed]
    assert not failed, failed
    assert e.passed


def test_a_slow_p99_fails_its_row_and_the_run() -> None:
    plan = scenarios.load("stress")
    e = evaluate.evaluate(plan, artillery([20, 250, 25] * 14), samples([1000] * 40), RUN)
    assert not e.passed
    rows = by_name(e)
    assert not rows["P99 update → Y_UPDATE_ACK"].passed
    assert "250.0 ms" in rows["P99 update → Y_UPDATE_ACK"].measured


def test_slow_storage_commits_are_shown_beside_slow_acks_without_deciding_the_run() -> None:
    """A busy disk: commits over 100 ms during the run explain a slow ACK row; the row itself is
    informational, the ACK row decides."""
    plan = scenarios.load("stress")
    rows = samples([1000] * 40)
    for i, row in enumerate(rows):  # 100 commits per sample, 3 of them over 100 ms from i = 20
        slow = 3.0 * max(0, i - 20)
        row["storage_commits"] = 100.0 * i
        row["storage_commit_seconds"] = 0.002 * (100 * i - slow) + 0.3 * slow
        row["storage_commits_within_0.005"] = 100.0 * i - slow
        row["storage_commits_within_0.1"] = 100.0 * i - slow
        row["storage_commits_within_0.5"] = 100.0 * i
    e = evaluate.evaluate(plan, artillery([20, 250, 25] * 14), rows, RUN)
    storage = by_name(e)["gateway's storage commits"]
    assert storage.informational
    assert storage.measured == "3,900 commits, mean 6.4 ms, p99 ≤ 500 ms, 57 over 100 ms"
    assert not e.passed  # the ACK row still fails the run


def test_a_run_without_commit_samples_has_no_storage_row() -> None:
    plan = scenarios.load("stress")
    e = evaluate.evaluate(plan, artillery([20] * 40), samples([1000] * 40), RUN)
    assert "gateway's storage commits" not in by_name(e)


def test_errors_and_drops_fail() -> None:
    plan = scenarios.load("stress")
    counters = {
        "collabgate.errors.WS_5003": 30,
        "collabgate.timeouts.Y_UPDATE": 20,
        "collabgate.dropped.1006": 1,
    }
    e = evaluate.evaluate(plan, artillery([20] * 40, counters), samples([1000] * 40), RUN)
    rows = by_name(e)
    assert not rows["error rate"].passed  # 50 failures of 40,100 operations > 0.1 %
    assert "50 of 40,100" in rows["error rate"].measured
    assert not rows["collabgate.dropped"].passed
    assert "collabgate.dropped.1006" in rows["collabgate.dropped"].measured


def test_concurrency_must_be_held_without_a_break() -> None:
    plan = scenarios.load("stress")
    dip = [1000] * 20 + [990] + [1000] * 20  # 200 s, a dip, 200 s
    e = evaluate.evaluate(plan, artillery([20] * 40), samples(dip), RUN)
    row = by_name(e)["1,000 concurrent users held"]
    assert not row.passed
    assert row.measured.startswith("190 s")


def test_a_soak_tolerates_a_user_between_sessions_even_at_five_users() -> None:
    """1 % of 5 users rounds to nobody; a sample catching one user reconnecting is not a break."""
    plan = scenarios.scaled(scenarios.load("soak"), users=5, duration=60)
    reconnecting = [5] * 4 + [4] + [5] * 4 + [4] + [5] * 4  # 140 s, one user between sessions twice
    e = evaluate.evaluate(plan, artillery([20] * 14), samples(reconnecting), RUN)
    assert by_name(e)["5 concurrent users held"].passed
    two_gone = [5] * 4 + [3] + [5] * 4  # 30 s, two gone, 30 s: never 60 s unbroken
    e = evaluate.evaluate(plan, artillery([20] * 14), samples(two_gone), RUN)
    assert not by_name(e)["5 concurrent users held"].passed


def test_nothing_measured_is_not_a_pass() -> None:
    plan = scenarios.load("stress")
    e = evaluate.evaluate(plan, {}, [], {"gateway": {}})
    assert not e.passed
    assert all("not measured" in c.measured for c in e.checks if c.name.startswith("P99"))


def test_recovery_after_the_spike() -> None:
    plan = scenarios.load("spike")  # the spike ends at t = 70 s
    quick = [10] * 6 + [400, 300, 90] + [10] * 15  # bad periods end at t = 80 s
    e = evaluate.evaluate(plan, artillery(quick), samples([1000] * 25), RUN)
    row = by_name(e)["P99 update → Y_UPDATE_ACK back under 200 ms after the spike"]
    assert row.passed
    assert row.measured.startswith("10 s after the spike")
    slow = [10] * 6 + [400] * 8 + [10] * 10  # still bad at t = 140 s: 70 s late
    e = evaluate.evaluate(plan, artillery(slow), samples([1000] * 25), RUN)
    assert not by_name(e)["P99 update → Y_UPDATE_ACK back under 200 ms after the spike"].passed


def test_a_scaled_down_spike_gets_two_periods_to_recover() -> None:
    """At 5 % scale the spike ends at t = 3.5 s, inside the first 10-s period: the period after
    it may still be slow (the next boundary falls 6.5 s later, wherever the spike ended), the
    one after that may not."""
    plan = scenarios.scaled(scenarios.load("spike"), scale=0.05)
    label = "P99 update → Y_UPDATE_ACK back under 200 ms after the spike"
    second_period = evaluate.evaluate(plan, artillery([400, 400, 10, 10]), samples([50] * 4), RUN)
    assert by_name(second_period)[label].passed
    assert by_name(second_period)[label].measured.startswith("16 s after the spike")
    third_period = evaluate.evaluate(plan, artillery([400, 400, 400, 10]), samples([50] * 4), RUN)
    assert not by_name(third_period)[label].passed


def test_memory_slope_over_the_second_half_of_the_sustained_part() -> None:
    plan = scenarios.scaled(scenarios.load("soak"), duration=1800)  # sustained t = 60 to 1860 s
    n = 200
    flat = [150 + (i % 3) * 0.2 for i in range(n)]
    e = evaluate.evaluate(plan, artillery([20] * 190), samples([1000] * n, flat), RUN)
    row = by_name(e)["gateway memory levels off"]
    assert row.passed, row.measured
    leaking = [150 + i * 0.05 for i in range(n)]  # 0.05 MB / 10 s = 18 MB/h
    e = evaluate.evaluate(plan, artillery([20] * 190), samples([1000] * n, leaking), RUN)
    row = by_name(e)["gateway memory levels off"]
    assert not row.passed
    assert row.measured.startswith("+18.00 MB/h")


def test_slope_per_hour() -> None:
    assert evaluate.slope_per_hour([(0, 100), (1800, 101), (3600, 102)]) == pytest.approx(2.0)
    assert evaluate.slope_per_hour([(0, 1)]) is None


def test_a_crashed_gateway_fails() -> None:
    plan = scenarios.load("spike")
    run = {"gateway": {"alive_at_end": False, "health_at_end": "unreachable (ConnectError)"}}
    e = evaluate.evaluate(plan, artillery([20] * 25), samples([1000] * 25), run)
    assert not by_name(e)["gateway did not crash"].passed


def test_the_report_is_one_self_contained_file() -> None:
    plan = scenarios.load("stress")
    e = evaluate.evaluate(
        plan, artillery([20, 30, 25] * 14), samples([1000] * 40, [120.0] * 40), RUN
    )
    html = report.render(
        e, [{"function": "run (asyncio/runners.py)", "self_pct": 5.0, "total_pct": 90.0}]
    )
    assert html.startswith("<!doctype html>")
    assert "<script" not in html
    # No external resource: the only URL is the SVG namespace.
    assert set(re.findall(r"https?://[^\s\"')]+", html)) == {"http://www.w3.org/2000/svg"}
    assert html.count("<svg") >= 8
    assert "PASS" in html
    assert "target: p99 &lt; 200 ms" in html
    assert len(html.encode()) < 500_000
    assert report.summary(e)["passed"] is True


def test_long_series_are_reduced_and_keep_their_spikes() -> None:
    points = [(float(i), 1.0) for i in range(20_000)]
    points[12_345] = (12_345.0, 99.0)
    reduced = svg.reduce_points(points, "max")
    assert len(reduced) <= svg.MAX_POINTS
    assert max(y for _, y in reduced) == 99.0
    chart = svg.line_chart("t", [svg.Series("s", points)], y_label="ms")
    assert len(chart) < 40_000


def test_nice_ticks() -> None:
    assert svg.nice_ticks(0, 200) == [0, 50, 100, 150, 200]
    assert svg.nice_ticks(0, 7) == [0, 2, 4, 6, 8]
