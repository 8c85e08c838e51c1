"""The HTML report of one run: one self-contained file (inline CSS and SVG, no script, no fetch).

Artillery 2 no longer writes HTML reports; this is the project's own, built from the raw JSON
Artillery writes plus the runner's samples of the gateway. It shows the pass/fail table against
the scenario's targets, connections, messages per second, latency percentiles over time, errors,
the gateway's memory and CPU and the load generator's own health.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

from tools.load.evaluate import (
    ERROR_PREFIXES,
    LATENCIES,
    Evaluation,
    Period,
    failures,
    sum_prefix,
)
from tools.load.svg import PALETTE, Band, Series, Threshold, line_chart

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d232b;margin:0;background:#f6f7f9}
main{max-width:980px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #d8dde3;padding-bottom:4px}
table{border-collapse:collapse;width:100%;background:#fff;margin:6px 0}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #e6e9ed;vertical-align:top}
th{background:#eef1f4;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}
.verdict{display:inline-block;padding:3px 10px;border-radius:4px;font-weight:700;color:#fff}
.pass{background:#2b7a3d}.fail{background:#b3261e}.info{background:#5f6b7a}
td .pass,td .fail,td .info{font-size:12px;padding:1px 7px}
.muted,.tick,.legend,.band-label{fill:#5f6b7a;color:#5f6b7a}
svg.chart{background:#fff;border:1px solid #e1e5ea;margin:8px 0;font-size:11px}
svg .title{font-size:13px;font-weight:600;fill:#1d232b}
svg .grid{stroke:#eceff2}svg .axis{stroke:#9aa4af}
svg .band{fill:#eef3fa}svg .band-edge{stroke:#c9d6e8;stroke-dasharray:2 3}svg .threshold{stroke:#b3261e;stroke-dasharray:6 4}
svg .threshold-label{fill:#b3261e}
code{font-size:12.5px;background:#eef1f4;padding:1px 4px;border-radius:3px}
p.note{color:#5f6b7a;font-size:13px}
"""

#: The three latencies the targets are about, then the others, each with a color.
LATENCY_PLOTS = (
    "collabgate.update_ack_ms",
    "collabgate.peer_delivery_ms",
    "collabgate.lock_acquire_ms",
    "collabgate.connect_ms",
    "collabgate.join_ms",
)


def render(evaluation: Evaluation, profile: Sequence[Mapping[str, Any]] | None = None) -> str:
    e = evaluation
    run = e.run
    verdict = "PASS" if e.passed else "FAIL"
    started = run.get("started_at")
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(started)) if started else "unknown"
    bands = [Band(w.start, w.end, w.name) for w in e.scenario.windows() if w.end > w.start]
    span = _x_range(e)
    body = [
        f"<h1>collabgate load test: {escape(e.scenario.name)} "
        f'<span class="verdict {verdict.lower()}">{verdict}</span></h1>',
        f'<p class="muted">{escape(when)} · {_duration(run)} · '
        f"{e.scenario.users:,} users · {escape(_scaling(e))}</p>",
        "<h2>Targets</h2>",
        _checks_table(e),
        "<h2>Connections and messages</h2>",
        _connections_chart(e, bands, span),
        _messages_chart(e, bands, span),
        "<h2>Latency over time</h2>",
        '<p class="note">Each point is one 10-s period of Artillery (P50, P95, P99 of that period). '
        "Every latency is measured in the load generator, from just before the request is "
        "written to the socket to the arrival of its own reply (peer delivery: to the arrival of "
        "the copy at another user in the same room, on the same clock).</p>",
        *(_latency_chart(e, m, bands, span) for m in LATENCY_PLOTS if e.summaries.get(m)),
        _latency_table(e),
        "<h2>Errors</h2>",
        _errors_chart(e, bands, span),
        _errors_table(e),
        "<h2>Gateway resources</h2>",
        _resources_charts(e, bands, span),
        _canary_chart(e, bands, span),
        "<h2>Load generator</h2>",
        _loadgen_chart(e, bands, span),
        *([_profile_table(profile)] if profile else []),
        "<h2>Run</h2>",
        _run_table(e),
    ]
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>collabgate load test: {escape(e.scenario.name)} ({verdict})</title>"
        f'<meta name="viewport" content="width=device-width,initial-scale=1"><style>{CSS}</style>'
        f"</head><body><main>{''.join(body)}</main></body></html>\n"
    )


def summary(evaluation: Evaluation) -> dict[str, Any]:
    """The machine-readable verdict (summary.json)."""
    e = evaluation
    latencies = {
        metric: {k: e.summaries[metric].get(k) for k in ("count", "p50", "p95", "p99", "max")}
        for metric in LATENCIES
        if e.summaries.get(metric)
    }
    return {
        "scenario": e.scenario.name,
        "passed": e.passed,
        "users": e.scenario.users,
        "scaling": e.scenario.scaling,
        "checks": [
            {
                "name": c.name,
                "target": c.target,
                "measured": c.measured,
                "passed": c.passed,
                "informational": c.informational,
            }
            for c in e.checks
        ],
        "latencies_ms": latencies,
        "counters": e.counters,
    }


def markdown(evaluation: Evaluation) -> str:
    """The verdict and the targets table in Markdown (a CI job summary)."""
    e = evaluation
    lines = [
        f"### {e.scenario.name}: {'PASS' if e.passed else 'FAIL'} "
        f"({e.scenario.users:,} users, {_scaling(e)})",
        "",
        "| what | target | measured | |",
        "|---|---|---|---|",
    ]
    for c in e.checks:
        state = "info" if c.informational else ("PASS" if c.passed else "**FAIL**")
        name, target, measured = (
            text.replace("|", "\\|") for text in (c.name, c.target, c.measured)
        )
        lines.append(f"| {name} | {target} | {measured} | {state} |")
    return "\n".join(lines) + "\n"


def write(
    evaluation: Evaluation, folder: Path, profile: Sequence[Mapping[str, Any]] | None = None
) -> Path:
    """Write report.html and summary.json into ``folder``; return the report's path."""
    report = folder / "report.html"
    report.write_text(render(evaluation, profile))
    (folder / "summary.json").write_text(json.dumps(summary(evaluation), indent=2) + "\n")
    return report


# --- sections -------------------------------------------------------------------------------


def _checks_table(e: Evaluation) -> str:
    rows = []
    for check in e.checks:
        state = "info" if check.informational else ("pass" if check.passed else "fail")
        label = {"info": "INFO", "pass": "PASS", "fail": "FAIL"}[state]
        rows.append(
            f"<tr><td>{escape(check.name)}</td><td>{escape(check.target)}</td>"
            f"<td>{escape(check.measured)}</td>"
            f'<td><span class="verdict {state}">{label}</span></td></tr>'
        )
    return (
        "<table><tr><th>what</th><th>target</th><th>measured</th><th></th></tr>"
        + "".join(rows)
        + "</table>"
    )


def _connections_chart(e: Evaluation, bands: list[Band], span: tuple[float, float]) -> str:
    gateway = e.sample_series("connections")
    if gateway:
        series = [Series("gateway: open WebSockets", gateway, PALETTE[0], reduce="mean")]
        title = "Connections (the gateway's websocket_connections_total)"
    else:  # a gateway whose /metrics was not sampled: the load generator's count per period
        series = [Series("sessions held", e.open_sessions(), PALETTE[1], reduce="mean")]
        title = "Connections (sessions the load generator held at the end of each period)"
    return line_chart(title, series, y_label="connections", bands=bands, x_range=span)


def _rate(name: str) -> Any:
    return lambda p: p.counters.get(name, 0) / p.seconds


def _messages_chart(e: Evaluation, bands: list[Band], span: tuple[float, float]) -> str:
    series = [
        Series(
            "frames to the gateway/s", e.period_series(_rate("collabgate.frames_sent")), PALETTE[0]
        ),
        Series(
            "frames from the gateway/s",
            e.period_series(_rate("collabgate.frames_received")),
            PALETTE[1],
        ),
        Series(
            "updates acknowledged/s", e.period_series(_rate("collabgate.updates.acked")), PALETTE[2]
        ),
        Series("peer deliveries/s", e.period_series(_rate("collabgate.deliveries")), PALETTE[3]),
    ]
    return line_chart(
        "Messages per second (load generator's view)",
        series,
        y_label="per second",
        bands=bands,
        x_range=span,
    )


def _percentile(metric: str, key: str) -> Any:
    def value(period: Period) -> float | None:
        summary = period.summaries.get(metric)
        return float(summary[key]) if summary and summary.get("count") else None

    return value


def _latency_chart(e: Evaluation, metric: str, bands: list[Band], span: tuple[float, float]) -> str:
    series = [
        Series("p50", e.period_series(_percentile(metric, "p50")), PALETTE[2]),
        Series("p95", e.period_series(_percentile(metric, "p95")), PALETTE[3]),
        Series("p99", e.period_series(_percentile(metric, "p99")), PALETTE[1]),
    ]
    limits = [float(v) for k, v in (e.scenario.targets.get("p99_ms") or {}).items() if k == metric]
    recovery = e.scenario.targets.get("recovery") or {}
    limits += [float(v) for k, v in (recovery.get("p99_ms") or {}).items() if k == metric]
    thresholds = [Threshold(limits[0], f"target: p99 < {limits[0]:g} ms")] if limits else []
    return line_chart(
        f"{LATENCIES[metric]} ({metric})",
        series,
        y_label="ms",
        bands=bands,
        thresholds=thresholds,
        x_range=span,
    )


def _latency_table(e: Evaluation) -> str:
    rows = []
    for metric, label in LATENCIES.items():
        s = e.summaries.get(metric)
        if not s:
            continue
        cells = "".join(
            f'<td class="num">{float(s.get(k, 0)):.1f}</td>'
            for k in ("p50", "p95", "p99", "p999", "max")
        )
        rows.append(
            f"<tr><td>{escape(label)}<br><code>{escape(metric)}</code></td>"
            f'<td class="num">{int(s.get("count", 0)):,}</td>{cells}</tr>'
        )
    return (
        "<table><tr><th>whole run, ms</th><th>n</th><th>p50</th><th>p95</th><th>p99</th>"
        "<th>p99.9</th><th>max</th></tr>" + "".join(rows) + "</table>"
    )


def _errors_chart(e: Evaluation, bands: list[Band], span: tuple[float, float]) -> str:
    series = [
        Series("failed operations", e.period_series(lambda p: failures(p.counters)), PALETTE[1]),
        Series(
            "dropped connections",
            e.period_series(lambda p: sum_prefix(p.counters, "collabgate.dropped")),
            PALETTE[4],
        ),
        Series(
            "missed deliveries",
            e.period_series(lambda p: p.counters.get("collabgate.deliveries_missed", 0)),
            PALETTE[3],
        ),
    ]
    return line_chart("Errors per 10-s period", series, y_label="count", bands=bands, x_range=span)


def _errors_table(e: Evaluation) -> str:
    rows = [
        (name, value)
        for name, value in sorted(e.counters.items())
        if value and any(name == p or name.startswith(p + ".") for p in ERROR_PREFIXES)
    ]
    if not rows:
        return '<p class="note">No error of any kind: no ERROR frame, timeout, refused or dropped connection, missed delivery or failed virtual user.</p>'
    body = "".join(
        f'<tr><td><code>{escape(n)}</code></td><td class="num">{v:,.0f}</td></tr>' for n, v in rows
    )
    return f"<table><tr><th>counter</th><th>count</th></tr>{body}</table>"


def _resources_charts(e: Evaluation, bands: list[Band], span: tuple[float, float]) -> str:
    cores = int((e.run.get("machine") or {}).get("cores") or 1)
    memory = line_chart(
        "Gateway resident memory",
        [Series("RSS", e.sample_series("rss_mb"), PALETTE[0], reduce="mean")],
        y_label="MB",
        bands=bands,
        x_range=span,
    )
    cpu = line_chart(
        "CPU (100 % = one core)",
        [
            Series("gateway", e.sample_series("cpu_pct"), PALETTE[0], reduce="mean"),
            Series(
                "gateway event loop (saturated at 100 %)",
                e.sample_series("loop_cpu_pct"),
                PALETTE[2],
                reduce="mean",
            ),
            Series(
                "load generator (Artillery)",
                e.sample_series("loadgen_cpu_pct"),
                PALETTE[1],
                dashed=True,
                reduce="mean",
            ),
            Series(
                f"whole machine ({100 * cores} % = all {cores} cores)",
                e.sample_series("machine_cpu_pct"),
                PALETTE[5],
                dashed=True,
                reduce="mean",
            ),
        ],
        y_label="%",
        bands=bands,
        x_range=span,
    )
    return memory + cpu


def _canary_chart(e: Evaluation, bands: list[Band], span: tuple[float, float]) -> str:
    worst = e.sample_series("canary_rtt_max_ms")
    if not worst:
        return ""
    return line_chart(
        "Gateway responsiveness: HEARTBEAT round trip of a separate canary connection, 5/s "
        "(outside the load generator)",
        [
            Series("worst per sample", worst, PALETTE[1]),
            Series("median per sample", e.sample_series("canary_rtt_p50_ms"), PALETTE[2]),
        ],
        y_label="ms",
        bands=bands,
        x_range=span,
    )


def _loadgen_chart(e: Evaluation, bands: list[Band], span: tuple[float, float]) -> str:
    metric = "loadgen.event_loop_delay_ms"
    return line_chart(
        "Load generator's event-loop delay (worst per second; p99 and max per period) and "
        "garbage-collection pauses",
        [
            Series("delay p99", e.period_series(_percentile(metric, "p99")), PALETTE[1]),
            Series(
                "delay max", e.period_series(_percentile(metric, "max")), PALETTE[4], dashed=True
            ),
            Series(
                "major GC pause max",
                e.period_series(_percentile("loadgen.gc_major_ms", "max")),
                PALETTE[2],
            ),
        ],
        y_label="ms",
        bands=bands,
        x_range=span,
    )


def _profile_table(profile: Sequence[Mapping[str, Any]]) -> str:
    rows = "".join(
        f"<tr><td><code>{escape(str(row['function']))}</code></td>"
        f'<td class="num">{float(row["self_pct"]):.1f}</td>'
        f'<td class="num">{float(row["total_pct"]):.1f}</td></tr>'
        for row in profile
    )
    return (
        "<h2>Where the gateway's CPU went (py-spy)</h2>"
        '<p class="note">Share of on-CPU samples of the gateway process over the profiled window: '
        "self = in the function itself, total = in it or what it called.</p>"
        f"<table><tr><th>function</th><th>self %</th><th>total %</th></tr>{rows}</table>"
    )


def _run_table(e: Evaluation) -> str:
    run = e.run
    gateway = run.get("gateway") or {}
    machine = run.get("machine") or {}
    phases = ", ".join(
        f"{w.name} {w.end - w.start:g} s ({w.arrivals:,.0f} users)" for w in e.scenario.windows()
    )
    rows: list[tuple[str, str]] = [
        ("scenario", f"{e.scenario.path.name}: {phases}"),
        ("variables", ", ".join(f"{k}={v}" for k, v in e.scenario.variables.items())),
        ("command", str(run.get("command", ""))),
        (
            "gateway",
            f"{gateway.get('target', '')} · adapters {json.dumps(gateway.get('adapters') or {})}",
        ),
        (
            "gateway settings",
            ", ".join(f"{k}={v}" for k, v in (gateway.get("settings") or {}).items()) or "defaults",
        ),
        (
            "machine",
            f"{machine.get('cpu', '?')} · {machine.get('cores', '?')} cores · {machine.get('memory_gib', '?')} GiB",
        ),
        (
            "load average",
            f"before {machine.get('load_before', '?')} · after {machine.get('load_after', '?')}",
        ),
        ("software", " · ".join(f"{k} {v}" for k, v in (run.get("versions") or {}).items())),
        ("Artillery", f"exit code {run.get('artillery_exit_code', '?')}"),
    ]
    body = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def _duration(run: Mapping[str, Any]) -> str:
    seconds = float(run.get("finished_at", 0)) - float(run.get("started_at", 0))
    if seconds <= 0:
        return "duration unknown"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 120:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.0f} s"


def _scaling(e: Evaluation) -> str:
    scaling = e.scenario.scaling
    parts = []
    if scaling.get("scale") not in (None, 1, 1.0):
        parts.append(f"LOAD_SCALE={scaling['scale']:g}")
    if scaling.get("users"):
        parts.append(f"LOAD_USERS={scaling['users']}")
    if scaling.get("duration"):
        parts.append(f"LOAD_DURATION={scaling['duration']:g}")
    if scaling.get("variables"):
        parts.append(f"LOAD_VARIABLES={json.dumps(scaling['variables'], separators=(',', ':'))}")
    return ", ".join(parts) or "full scale"


def _x_range(e: Evaluation) -> tuple[float, float]:
    xs: list[float] = [p.start for p in e.periods] + [p.end for p in e.periods]
    xs += [t for t, _ in e.sample_series("rss_mb")]
    return (min(0.0, *xs) if xs else 0.0, max(xs) if xs else 1.0)
