"""From a results folder's raw data to time series and the pass/fail table.

Inputs: Artillery's JSON (``aggregate`` and one ``intermediate`` entry per 10-s period), the
runner's samples of the gateway (memory, CPU, its /metrics), run.json and the scenario's
``targets``. Target kinds (keys of ``targets`` in tests/load/*.yml):

``p99_ms``            {histogram: limit}: the run's P99 of each histogram under its limit
``error_rate``        failed operations / operations under the limit; an operation is a request
                      that expects a reply or a connection attempt; failures are ERROR replies,
                      reply timeouts, requests cut off by a closed socket and failed connections
``session_survival``  share of sessions that ended on the client's own terms (WebSocket uptime)
``must_be_zero``      [counter prefix]: every counter under the prefix stays at 0
``concurrent_users``  {at_least, for_seconds, tolerance?}: the gateway's own open-connection
                      gauge stays at or above at_least * (1 - tolerance) (with a tolerance, at
                      least one user fewer) that long without a break
``recovery``          {after_phase, within_seconds, p99_ms: {histogram: limit}}: from that long
                      after the phase ends, no 10-s period has a P99 at or above its limit
``memory_slope``      {max_mb_per_hour}: least-squares slope of the gateway's resident memory over
                      the second half of the sustained part (informational below 10 minutes of
                      sustained load: a scaled-down soak cannot judge a leak)
``gateway_alive``     the gateway still runs and answers /health after the run

A target that could not be measured fails: no figure is not a pass. Durations in targets (and
``within_seconds``) scale with the run's LOAD_SCALE; none goes below one 10-s period where
period data decide it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tools.load.scenario import Scenario

PERIOD_SECONDS = 10.0
#: Histograms shown in the report, in this order, with a label.
LATENCIES = {
    "collabgate.update_ack_ms": "update → Y_UPDATE_ACK",
    "collabgate.peer_delivery_ms": "update → peer's copy",
    "collabgate.lock_acquire_ms": "LOCK_ACQUIRE → reply",
    "collabgate.connect_ms": "connect → CONNECTED",
    "collabgate.join_ms": "JOIN_RESOURCE → RESOURCE_STATE",
    "collabgate.lock_release_ms": "LOCK_RELEASE → reply",
    "collabgate.heartbeat_rtt_ms": "HEARTBEAT → ACK",
    "loadgen.event_loop_delay_ms": "load generator's event-loop delay (per second, worst)",
    "loadgen.gc_major_ms": "load generator's major garbage collections (pause)",
}
FAILURE_PREFIXES = (
    "collabgate.errors",
    "collabgate.timeouts",
    "collabgate.unanswered",
    "collabgate.connect_failed",
)
#: Counters listed in the report's error table.
ERROR_PREFIXES = (
    *FAILURE_PREFIXES,
    "collabgate.dropped",
    "collabgate.deliveries_missed",
    "errors",
    "vusers.failed",
)
#: The load generator's own delay above which its latencies include its own queueing.
LOADGEN_DELAY_WARN_MS = 50.0


@dataclass
class Period:
    """One of Artillery's 10-s periods, placed in seconds from the first arrival."""

    start: float
    end: float
    counters: dict[str, float]
    summaries: dict[str, dict[str, float]]

    @property
    def middle(self) -> float:
        return (self.start + self.end) / 2

    @property
    def seconds(self) -> float:
        return max(1.0, self.end - self.start)


@dataclass
class Check:
    name: str
    target: str
    measured: str
    passed: bool
    #: Informational rows explain the figures and do not decide the verdict.
    informational: bool = False


@dataclass
class Evaluation:
    scenario: Scenario
    run: dict[str, Any]
    t0_ms: float
    periods: list[Period]
    counters: dict[str, float]
    summaries: dict[str, dict[str, float]]
    samples: list[dict[str, Any]]
    checks: list[Check] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks if not check.informational)

    def sample_series(self, key: str) -> list[tuple[float, float]]:
        """(seconds from the first arrival, value) of one sampled quantity."""
        return [
            (s["t"] - self.t0_ms / 1000, float(s[key]))
            for s in self.samples
            if s.get(key) is not None
        ]

    def period_series(self, value: Any) -> list[tuple[float, float]]:
        points = []
        for period in self.periods:
            y = value(period)
            if y is not None and math.isfinite(y):
                points.append((period.middle, float(y)))
        return points

    def open_sessions(self) -> list[tuple[float, float]]:
        """Sessions the load generator holds at the end of each period."""
        points, total = [], 0.0
        for period in self.periods:
            total += period.counters.get("collabgate.sessions.opened", 0)
            total -= period.counters.get("collabgate.sessions.closed", 0)
            points.append((period.end, total))
        return points


def sum_prefix(counters: Mapping[str, float], prefix: str) -> float:
    return sum(v for k, v in counters.items() if k == prefix or k.startswith(prefix + "."))


def failures(counters: Mapping[str, float]) -> float:
    return sum(sum_prefix(counters, p) for p in FAILURE_PREFIXES)


def operations(counters: Mapping[str, float]) -> float:
    return (
        sum_prefix(counters, "collabgate.requests")
        + counters.get("collabgate.sessions.opened", 0)
        + sum_prefix(counters, "collabgate.connect_failed")
    )


def evaluate(
    scenario: Scenario,
    artillery: Mapping[str, Any],
    samples: Sequence[dict[str, Any]],
    run: Mapping[str, Any],
) -> Evaluation:
    aggregate = artillery.get("aggregate") or {}
    intermediate = artillery.get("intermediate") or []
    t0_ms = float(
        aggregate.get("firstMetricAt")
        or min((p.get("firstMetricAt") or p["period"] for p in intermediate), default=0)
        or run.get("started_at", 0) * 1000
    )
    periods = [_period(p, t0_ms) for p in sorted(intermediate, key=lambda p: float(p["period"]))]
    evaluation = Evaluation(
        scenario=scenario,
        run=dict(run),
        t0_ms=t0_ms,
        periods=periods,
        counters={k: float(v) for k, v in (aggregate.get("counters") or {}).items()},
        summaries=aggregate.get("summaries") or {},
        samples=list(samples),
    )
    evaluation.checks = list(_checks(evaluation))
    return evaluation


def _period(raw: Mapping[str, Any], t0_ms: float) -> Period:
    start_ms = float(raw["period"])
    first = float(raw.get("firstMetricAt") or start_ms)
    last = float(raw.get("lastMetricAt") or start_ms + PERIOD_SECONDS * 1000)
    start = max(start_ms, min(first, start_ms + PERIOD_SECONDS * 1000))
    end = min(start_ms + PERIOD_SECONDS * 1000, max(last, start + 1000))
    return Period(
        start=(start - t0_ms) / 1000,
        end=(end - t0_ms) / 1000,
        counters={k: float(v) for k, v in (raw.get("counters") or {}).items()},
        summaries=raw.get("summaries") or {},
    )


def _checks(e: Evaluation) -> Iterable[Check]:
    targets = e.scenario.targets
    time_scale = float(e.scenario.scaling.get("scale") or 1.0)
    for metric, limit in (targets.get("p99_ms") or {}).items():
        yield _p99_check(e, metric, float(limit))
    if "error_rate" in targets:
        yield _error_rate_check(e, float(targets["error_rate"]))
    if "session_survival" in targets:
        yield _survival_check(e, float(targets["session_survival"]))
    for prefix in targets.get("must_be_zero") or []:
        total = sum_prefix(e.counters, prefix)
        names = sorted(k for k, v in e.counters.items() if v and k.startswith(prefix))
        detail = f"{total:g}" + (f" ({', '.join(names)})" if names and total else "")
        yield Check(prefix, "= 0", detail, total == 0)
    if "concurrent_users" in targets:
        yield _concurrency_check(e, targets["concurrent_users"])
    if "recovery" in targets:
        yield from _recovery_checks(e, targets["recovery"], time_scale)
    if "memory_slope" in targets:
        yield _memory_check(e, float(targets["memory_slope"]["max_mb_per_hour"]))
    if targets.get("gateway_alive"):
        yield _alive_check(e)
    yield _loadgen_check(e)
    storage = _storage_check(e)
    if storage is not None:
        yield storage
    canary = _canary_check(e)
    if canary is not None:
        yield canary


def _p99_check(e: Evaluation, metric: str, limit: float) -> Check:
    summary = e.summaries.get(metric)
    label = f"P99 {LATENCIES.get(metric, metric)}"
    if not summary or not summary.get("count"):
        return Check(label, f"< {limit:g} ms", "not measured (no samples)", False)
    p99 = float(summary["p99"])
    measured = f"{p99:.1f} ms (p50 {summary['p50']:.1f}, max {summary['max']:.1f}, n = {summary['count']:,})"
    return Check(label, f"< {limit:g} ms", measured, p99 < limit)


def _error_rate_check(e: Evaluation, limit: float) -> Check:
    failed, total = failures(e.counters), operations(e.counters)
    if total == 0:
        return Check("error rate", f"< {limit:.2%}", "not measured (no operations)", False)
    rate = failed / total
    return Check(
        "error rate", f"< {limit:.2%}", f"{rate:.4%} ({failed:g} of {total:,.0f})", rate < limit
    )


def _survival_check(e: Evaluation, minimum: float) -> Check:
    opened = e.counters.get("collabgate.sessions.opened", 0)
    dropped = sum_prefix(e.counters, "collabgate.dropped")
    if opened == 0:
        return Check("WebSocket uptime", f"> {minimum:.1%}", "not measured (no session)", False)
    survival = 1 - dropped / opened
    return Check(
        "WebSocket uptime (sessions not dropped)",
        f"> {minimum:.1%}",
        f"{survival:.4%} ({dropped:g} dropped of {opened:,.0f})",
        survival > minimum,
    )


def _concurrency_check(e: Evaluation, target: Mapping[str, Any]) -> Check:
    users = e.scenario.number(target["at_least"])
    seconds = e.scenario.number(target["for_seconds"])
    tolerance = float(target.get("tolerance", 0))
    floor = math.ceil(users * (1 - tolerance) - 1e-9)
    if (
        tolerance > 0
    ):  # scaled down, 1 % of a few users rounds to nobody: allow one between sessions
        floor = min(floor, max(math.ceil(users) - 1, 1))
    series = e.sample_series("connections")
    source = "the gateway's websocket_connections_total"
    if not series:
        series, source = e.open_sessions(), "sessions the load generator held (no gateway samples)"
    longest = _longest_at_or_above(series, floor)
    peak = max((v for _, v in series), default=0)
    name = f"{users:,.0f} concurrent users held"
    target_text = f"≥ {floor:,} connections for ≥ {seconds:g} s"
    measured = f"{longest:.0f} s (peak {peak:,.0f}; {source})"
    return Check(name, target_text, measured, longest >= seconds)


def _longest_at_or_above(series: Sequence[tuple[float, float]], floor: float) -> float:
    longest, since = 0.0, None
    for t, value in series:
        if value >= floor:
            since = t if since is None else since
            longest = max(longest, t - since)
        else:
            since = None
    return longest


def _recovery_checks(
    e: Evaluation, target: Mapping[str, Any], time_scale: float
) -> Iterable[Check]:
    phase = str(target["after_phase"])
    windows = {w.name: w for w in e.scenario.windows()}
    if phase not in windows:
        yield Check(f"recovery after {phase}", "", f"no phase named {phase}", False)
        return
    window = windows[phase]
    # Artillery reports 10-s periods counted from the start of the run, so a period boundary can
    # fall just after the phase ends. Scaled down below two periods, the allowance would judge
    # where that boundary fell rather than how fast the gateway recovered: it keeps two.
    allowed = max(float(target["within_seconds"]) * time_scale, 2 * PERIOD_SECONDS)
    limits = {k: float(v) for k, v in (target.get("p99_ms") or {}).items()}
    after = [p for p in e.periods if p.end > window.start]
    for metric, limit in limits.items():
        label = f"P99 {LATENCIES.get(metric, metric)} back under {limit:g} ms after the {phase}"
        measured_periods = [p for p in after if (p.summaries.get(metric) or {}).get("count")]
        if not measured_periods:
            yield Check(label, f"within {allowed:g} s", "not measured (no samples)", False)
            continue
        bad = [p for p in measured_periods if float(p.summaries[metric]["p99"]) >= limit]
        worst = max(float(p.summaries[metric]["p99"]) for p in measured_periods)
        if not bad:
            measured = f"never above (worst 10-s P99 {worst:.1f} ms)"
            yield Check(label, f"within {allowed:g} s", measured, True)
            continue
        recovered_at = max(p.end for p in bad)
        late = max(0.0, recovered_at - window.end)
        measured = f"{late:.0f} s after the {phase} (worst 10-s P99 {worst:.1f} ms)"
        yield Check(label, f"within {allowed:g} s", measured, late <= allowed)


def memory_window(e: Evaluation) -> tuple[float, float]:
    """The sustained part: from the last arrival to the last arrival + sustainSeconds (or the
    end of the samples)."""
    windows = e.scenario.windows()
    start = windows[-1].end if windows else 0.0
    sustain = e.scenario.variables.get("sustainSeconds")
    series = e.sample_series("rss_mb")
    end = start + float(sustain) if sustain else (series[-1][0] if series else start)
    if series:
        end = min(end, series[-1][0])
    return start, end


def slope_per_hour(points: Sequence[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, value) points, per hour."""
    if len(points) < 3:
        return None
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return None
    cov = sum((t - mean_t) * (v - mean_v) for t, v in points)
    return cov / var * 3600


#: A slope over less sustained load than this says nothing about a leak.
MEMORY_WINDOW_MIN_SECONDS = 600.0


def _memory_check(e: Evaluation, limit: float) -> Check:
    start, end = memory_window(e)
    middle = (start + end) / 2
    series = e.sample_series("rss_mb")
    late = [(t, v) for t, v in series if middle <= t <= end]
    whole = [(t, v) for t, v in series if start <= t <= end]
    slope = slope_per_hour(late)
    if slope is None:
        return Check("gateway memory levels off", f"slope < {limit:g} MB/h", "not measured", False)
    overall = slope_per_hour(whole)
    first, last = whole[0][1], whole[-1][1]
    measured = (
        f"{slope:+.2f} MB/h over t = {middle:.0f} to {end:.0f} s (whole sustained part "
        f"{overall:+.2f} MB/h; {first:.0f} → {last:.0f} MB; {len(series)} samples)"
    )
    if end - start < MEMORY_WINDOW_MIN_SECONDS:
        return Check(
            "gateway memory levels off",
            f"needs ≥ {MEMORY_WINDOW_MIN_SECONDS:g} s of sustained load to judge (informational)",
            measured,
            True,
            True,
        )
    return Check("gateway memory levels off", f"slope < {limit:g} MB/h", measured, slope < limit)


def _alive_check(e: Evaluation) -> Check:
    gateway = e.run.get("gateway") or {}
    alive = gateway.get("alive_at_end")
    health = gateway.get("health_at_end")
    if alive is None:
        return Check("gateway did not crash", "alive, /health 200", "not measured", False)
    measured = f"{'running' if alive else 'exited'}, /health {health}"
    code = gateway.get("exit_code")
    if alive and code in (0, -15):  # uvicorn re-raises SIGTERM once it has drained
        measured += ", stopped cleanly on SIGTERM afterwards"
    elif code is not None:
        measured += f", exit code {code}"
    return Check(
        "gateway did not crash", "alive, /health 200", measured, bool(alive) and health == 200
    )


def _canary_check(e: Evaluation) -> Check | None:
    worst = [v for _, v in e.sample_series("canary_rtt_max_ms")]
    medians = sorted(v for _, v in e.sample_series("canary_rtt_p50_ms"))
    if not worst:
        return None
    failures = sum(v for _, v in e.sample_series("canary_failures"))
    measured = f"median {medians[len(medians) // 2]:.1f} ms, worst {max(worst):.1f} ms" + (
        f", {failures:g} failed connections" if failures else ""
    )
    return Check(
        "gateway responsive to a separate canary connection",
        "HEARTBEAT round trip (informational)",
        measured,
        True,
        True,
    )


#: The gateway's commit-time histogram, sampled during the run: a Y_UPDATE_ACK waits for a commit.
STORAGE_COMMITS = "collabgate_storage_commit_seconds"
#: Sample keys of its buckets: this prefix and the bound in seconds hold the commits within it.
COMMITS_WITHIN = "storage_commits_within_"
#: A commit over this many seconds is counted as slow.
SLOW_COMMIT_SECONDS = 0.1


def _storage_check(e: Evaluation) -> Check | None:
    """How the gateway's commits went during the run: an ACK waits for one, so slow ones (a
    busy disk) explain slow ACKs while deliveries, which do not wait, stay fast."""
    count = _increase(e, "storage_commits")
    if count is None:
        return None
    seconds = _increase(e, "storage_commit_seconds") or 0.0
    measured = f"{count:,.0f} commits, mean {1000 * seconds / count if count else 0:.1f} ms"
    within = {}
    for key in {k for s in e.samples for k in s if k.startswith(COMMITS_WITHIN)}:
        bound, commits = float(key.removeprefix(COMMITS_WITHIN)), _increase(e, key)
        if commits is not None:
            within[bound] = commits
    if count and within:
        p99 = min((b for b, n in within.items() if n >= 0.99 * count), default=None)
        measured += (
            f", p99 ≤ {p99 * 1000:g} ms"
            if p99 is not None
            else f", p99 > {max(within) * 1000:g} ms"
        )
        if SLOW_COMMIT_SECONDS in within:
            slow = count - within[SLOW_COMMIT_SECONDS]
            measured += f", {slow:,.0f} over {SLOW_COMMIT_SECONDS * 1000:g} ms"
    return Check("gateway's storage commits", "informational", measured, True, True)


def _increase(e: Evaluation, key: str) -> float | None:
    """How much a sampled counter grew over the run; None without two samples of it."""
    series = e.sample_series(key)
    return series[-1][1] - series[0][1] if len(series) >= 2 else None


def _loadgen_check(e: Evaluation) -> Check:
    summary = e.summaries.get("loadgen.event_loop_delay_ms") or {}
    if not summary.get("count"):
        return Check("load generator kept up", "informational", "not measured", True, True)
    p99 = float(summary["p99"])
    verdict = "yes" if p99 < LOADGEN_DELAY_WARN_MS else "NO: its latencies include its own queueing"
    measured = f"{verdict} (event-loop delay p99 {p99:.1f} ms, max {summary['max']:.1f} ms)"
    return Check(
        "load generator kept up",
        f"delay p99 < {LOADGEN_DELAY_WARN_MS:g} ms (informational)",
        measured,
        True,
        True,
    )
