"""Line charts as inline SVG: the report stays one self-contained file, with no plotting library."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf")
#: Above this many points a series is reduced to this many buckets (max or mean of each).
MAX_POINTS = 500


@dataclass(frozen=True)
class Series:
    label: str
    points: Sequence[tuple[float, float]]
    color: str = PALETTE[0]
    dashed: bool = False
    #: How to reduce a long series: "max" keeps spikes visible (latencies), "mean" levels.
    reduce: str = "max"


@dataclass(frozen=True)
class Band:
    """A shaded span of the x axis, e.g. a phase."""

    start: float
    end: float
    label: str


@dataclass(frozen=True)
class Threshold:
    value: float
    label: str


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high]."""
    if high <= low:
        high = low + 1
    raw = (high - low) / max(1, count)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.floor(low / step) * step
    ticks, value = [first], first
    while value < high - step * 1e-9:
        value += step
        ticks.append(round(value, 10))
    return ticks


def time_unit(span_seconds: float) -> tuple[float, str]:
    if span_seconds > 3 * 3600:
        return 3600.0, "h"
    if span_seconds > 15 * 60:
        return 60.0, "min"
    return 1.0, "s"


def reduce_points(points: Sequence[tuple[float, float]], how: str) -> list[tuple[float, float]]:
    if len(points) <= MAX_POINTS:
        return list(points)
    low, high = points[0][0], points[-1][0]
    width = (high - low) / MAX_POINTS or 1.0
    buckets: dict[int, list[tuple[float, float]]] = {}
    for x, y in points:
        buckets.setdefault(min(MAX_POINTS - 1, int((x - low) / width)), []).append((x, y))
    reduced = []
    for _, members in sorted(buckets.items()):
        xs = [x for x, _ in members]
        ys = [y for _, y in members]
        y = max(ys) if how == "max" else sum(ys) / len(ys)
        reduced.append((sum(xs) / len(xs), y))
    return reduced


def _format(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 10000:
        return f"{value / 1000:g}k"
    if abs(value) >= 100 or value == int(value):
        return f"{value:,.0f}"
    return f"{value:.3g}"


def line_chart(
    title: str,
    series: Sequence[Series],
    *,
    y_label: str,
    bands: Sequence[Band] = (),
    thresholds: Sequence[Threshold] = (),
    x_range: tuple[float, float] | None = None,
    y_max: float | None = None,
    width: int = 900,
    height: int = 250,
) -> str:
    """An SVG line chart of ``series`` against time in seconds (axis in s, min or h)."""
    left, right, top, bottom = 64, 16, 44, 38
    plot_w, plot_h = width - left - right, height - top - bottom
    drawn = [s for s in series if s.points]
    xs = [x for s in drawn for x, _ in s.points]
    ys = [y for s in drawn for _, y in s.points] + [t.value for t in thresholds]
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="100%" role="img" aria-label="{escape(title)}" class="chart">',
        f'<text x="{left}" y="18" class="title">{escape(title)}</text>',
    ]
    if not drawn:
        parts.append(
            f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" class="muted">'
            "no data</text></svg>"
        )
        return "".join(parts)
    x_low, x_high = x_range or (min(xs), max(xs))
    if x_high <= x_low:
        x_high = x_low + 1
    y_high = y_max if y_max is not None else max(ys) * 1.08
    y_ticks = nice_ticks(0.0, y_high if y_high > 0 else 1.0)
    y_top = y_ticks[-1]
    unit, unit_name = time_unit(x_high - x_low)
    x_ticks = [t * unit for t in nice_ticks(x_low / unit, x_high / unit, 8)]
    x_ticks = [t for t in x_ticks if x_low <= t <= x_high]

    def px(x: float) -> float:
        return left + (x - x_low) / (x_high - x_low) * plot_w

    def py(y: float) -> float:
        return top + plot_h - min(max(y, 0.0), y_top) / y_top * plot_h

    label_end = float(left) - 10
    for index, band in enumerate(bands):
        x0, x1 = px(max(band.start, x_low)), px(min(band.end, x_high))
        if x1 <= x0:
            continue
        if index % 2 == 0:  # every other phase shaded, boundaries drawn, labels where they fit
            parts.append(
                f'<rect x="{x0:.1f}" y="{top}" width="{x1 - x0:.1f}" height="{plot_h}" class="band"/>'
            )
        parts.append(
            f'<line x1="{x0:.1f}" x2="{x0:.1f}" y1="{top}" y2="{top + plot_h}" class="band-edge"/>'
        )
        if x0 + 3 >= label_end + 6:  # a label may run past a narrow phase, not into the next label
            parts.append(
                f'<text x="{x0 + 3:.1f}" y="{top + 11}" class="band-label">{escape(band.label)}</text>'
            )
            label_end = x0 + 3 + 6.5 * len(band.label)
    for tick in y_ticks:
        y = py(tick)
        parts.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" class="tick">{_format(tick)}</text>'
        )
    for tick in x_ticks:
        x = px(tick)
        parts.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top + plot_h}" y2="{top + plot_h + 4}" class="axis"/>'
            f'<text x="{x:.1f}" y="{top + plot_h + 16}" text-anchor="middle" class="tick">'
            f"{_format(tick / unit)}</text>"
        )
    parts.append(
        f'<line x1="{left}" x2="{left + plot_w}" y1="{top + plot_h}" y2="{top + plot_h}" class="axis"/>'
        f'<text x="{left + plot_w / 2}" y="{height - 4}" text-anchor="middle" class="tick">'
        f"time since the first user ({unit_name})</text>"
        f'<text x="14" y="{top + plot_h / 2}" text-anchor="middle" class="tick" '
        f'transform="rotate(-90 14 {top + plot_h / 2})">{escape(y_label)}</text>'
    )
    for threshold in thresholds:
        y = py(threshold.value)
        parts.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" class="threshold"/>'
            f'<text x="{left + plot_w - 4}" y="{y - 4:.1f}" text-anchor="end" class="threshold-label">'
            f"{escape(threshold.label)}</text>"
        )
    for s in drawn:
        points = reduce_points(s.points, s.reduce)
        path = " ".join(
            f"{'M' if i == 0 else 'L'}{px(x):.1f},{py(y):.1f}" for i, (x, y) in enumerate(points)
        )
        dash = ' stroke-dasharray="5 3"' if s.dashed else ""
        parts.append(f'<path d="{path}" fill="none" stroke="{s.color}" stroke-width="1.6"{dash}/>')
        if len(points) == 1:
            x, y = points[0]
            parts.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="2.5" fill="{s.color}"/>')
    legend_x = float(left)
    for s in drawn:
        dash = ' stroke-dasharray="4 2"' if s.dashed else ""
        parts.append(
            f'<line x1="{legend_x:.1f}" x2="{legend_x + 14:.1f}" y1="31" y2="31" stroke="{s.color}" '
            f'stroke-width="2.5"{dash}/>'
            f'<text x="{legend_x + 18:.1f}" y="35" class="legend">{escape(s.label)}</text>'
        )
        legend_x += 6.4 * len(s.label) + 34
    parts.append("</svg>")
    return "".join(parts)
