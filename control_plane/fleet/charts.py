"""Telemetry charts drawn on the server as plain SVG geometry: no JavaScript, no chart library.

:func:`line_chart` turns a series into coordinates inside a fixed view box; the template writes
the ``<svg>`` with them. Gaps (the PC was off) break the line instead of bridging them, and the
figures a reader wants in words (latest, lowest, highest) come with it for the caption.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

from .series import Point

WIDTH, HEIGHT = 640, 220
# Room for the value labels on the left and the time labels underneath.
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 12, 28


@dataclass(frozen=True)
class Tick:
    """A grid line: its position in the view box and the value (or time) it marks."""

    at: float
    value: float


@dataclass(frozen=True)
class TimeTick:
    """A time label under the chart."""

    at: float
    when: dt.datetime


@dataclass(frozen=True)
class Chart:
    """Everything the template needs to draw one series."""

    width: int
    height: int
    segments: list[str]  # "x,y x,y ..." per stretch without a gap
    dots: list[tuple[float, float]]  # lone points (a stretch of one sample)
    y_ticks: list[Tick]
    x_ticks: list[TimeTick]
    plot_left: float
    plot_right: float
    plot_top: float
    plot_bottom: float
    latest: Point
    low: float
    high: float
    count: int


def nice_step(span: float, target: int = 4) -> float:
    """A round step (1, 2 or 5 times a power of ten) giving about ``target`` intervals."""
    if span <= 0 or not math.isfinite(span):
        return 1.0
    raw = span / target
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if raw <= factor * power:
            return factor * power
    return 10 * power


def _y_range(
    values: Sequence[float], floor: float | None, ceiling: float | None
) -> tuple[float, float]:
    low, high = min(values), max(values)
    if floor is not None:
        low = min(low, floor)
    if ceiling is not None:
        high = max(high, ceiling)
    if high - low < 1e-9:  # a flat line: give it some room to sit in
        pad = abs(high) * 0.1 or 1.0
        low, high = low - pad, high + pad
    step = nice_step(high - low)
    return math.floor(low / step) * step, math.ceil(high / step) * step


def _gap_limit(points: Sequence[Point]) -> float:
    """Seconds between two points beyond which the line breaks (the device was off)."""
    gaps = sorted((b.ts - a.ts).total_seconds() for a, b in itertools.pairwise(points))
    if not gaps:
        return math.inf
    return max(3 * gaps[len(gaps) // 2], 1.0)


def line_chart(
    points: Sequence[Point],
    since: dt.datetime,
    until: dt.datetime,
    *,
    floor: float | None = None,
    ceiling: float | None = None,
    width: int = WIDTH,
    height: int = HEIGHT,
) -> Chart | None:
    """The chart of ``points`` over [since, until]; None when there is nothing to draw."""
    if not points:
        return None
    values = [p.value for p in points]
    y0, y1 = _y_range(values, floor, ceiling)
    left, right = float(LEFT), float(width - RIGHT)
    top, bottom = float(TOP), float(height - BOTTOM)
    span = max((until - since).total_seconds(), 1.0)

    def x_of(when: dt.datetime) -> float:
        return left + (right - left) * (when - since).total_seconds() / span

    def y_of(value: float) -> float:
        return bottom - (bottom - top) * (value - y0) / (y1 - y0)

    limit = _gap_limit(points)
    stretches: list[list[Point]] = [[points[0]]]
    for previous, point in itertools.pairwise(points):
        if (point.ts - previous.ts).total_seconds() > limit:
            stretches.append([])
        stretches[-1].append(point)
    segments = [
        " ".join(f"{x_of(p.ts):.1f},{y_of(p.value):.1f}" for p in stretch)
        for stretch in stretches
        if len(stretch) > 1
    ]
    dots = [(x_of(s[0].ts), y_of(s[0].value)) for s in stretches if len(s) == 1]
    step = nice_step(y1 - y0)
    count = round((y1 - y0) / step)
    y_ticks = [Tick(y_of(y0 + i * step), y0 + i * step) for i in range(count + 1)]
    # Three time labels (start, middle, end): more would not fit on a phone.
    x_ticks = [
        TimeTick(x_of(since + (until - since) * i / 2), since + (until - since) * i / 2)
        for i in range(3)
    ]
    return Chart(
        width=width,
        height=height,
        segments=segments,
        dots=dots,
        y_ticks=y_ticks,
        x_ticks=x_ticks,
        plot_left=left,
        plot_right=right,
        plot_top=top,
        plot_bottom=bottom,
        latest=points[-1],
        low=min(values),
        high=max(values),
        count=len(points),
    )
