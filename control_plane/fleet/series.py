"""Reading telemetry series back for charts and the API: one device, some metrics, a range.

The samples are kept with every accepted batch (``telemetry_batches.samples``, whatever the
sink), so that is where series are read from: the batches of the device whose send time can
hold samples of the range. A long range is averaged into at most ``max_points`` buckets, so a
month of one-minute samples still draws quickly on a cheap laptop.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..models import TelemetryBatchRecord

# The ranges the console offers, and the API accepts by name.
RANGES: dict[str, dt.timedelta] = {
    "1h": dt.timedelta(hours=1),
    "24h": dt.timedelta(hours=24),
    "7d": dt.timedelta(days=7),
    "30d": dt.timedelta(days=30),
}
DEFAULT_RANGE = "24h"
# Batches are grouped offline (up to 500 samples): a batch sent this long after its first
# sample still holds samples inside the range.
_BATCH_SPAN = dt.timedelta(days=2)


@dataclass(frozen=True)
class Point:
    """One value of a series (an average when several samples share a bucket)."""

    ts: dt.datetime
    value: float


def parse_range(name: str) -> dt.timedelta:
    """The length of a named range; ValueError naming the choices otherwise."""
    try:
        return RANGES[name]
    except KeyError:
        raise ValueError(f"range: must be one of {', '.join(RANGES)}, got {name!r}") from None


def downsample(
    points: Sequence[Point], since: dt.datetime, until: dt.datetime, max_points: int
) -> list[Point]:
    """Average ``points`` (sorted by time) into at most ``max_points`` equal time buckets."""
    if max_points < 1:
        raise ValueError(f"max_points: must be >= 1, got {max_points}")
    if len(points) <= max_points:
        return list(points)
    span = (until - since).total_seconds()
    width = span / max_points if span > 0 else 1.0
    buckets: dict[int, tuple[float, float, int]] = {}  # index -> (sum of ts, sum of values, n)
    for point in points:
        index = min(int((point.ts - since).total_seconds() // width), max_points - 1)
        ts_sum, value_sum, n = buckets.get(index, (0.0, 0.0, 0))
        buckets[index] = (ts_sum + point.ts.timestamp(), value_sum + point.value, n + 1)
    # Each bucket is drawn at the mean time of its samples, so sparse data is not shifted.
    return [
        Point(dt.datetime.fromtimestamp(ts_sum / n, dt.UTC), value_sum / n)
        for _, (ts_sum, value_sum, n) in sorted(buckets.items())
    ]


def load_series(
    session: Session,
    device_id: str,
    metrics: Iterable[str],
    since: dt.datetime,
    until: dt.datetime,
    *,
    max_points: int = 300,
) -> dict[str, list[Point]]:
    """Each metric's points in [since, until], oldest first, at most ``max_points`` each."""
    raw: dict[str, list[Point]] = {name: [] for name in dict.fromkeys(metrics)}
    if not raw:
        return raw
    rows = session.execute(
        select(TelemetryBatchRecord.samples).where(
            TelemetryBatchRecord.device_id == device_id,
            TelemetryBatchRecord.ts >= since,
            TelemetryBatchRecord.ts <= until + _BATCH_SPAN,
        )
    ).scalars()
    lo, hi = since.timestamp(), until.timestamp()
    for samples in rows:
        for sample in samples or []:
            ts = sample.get("ts")
            if not isinstance(ts, int | float) or not lo <= ts <= hi:
                continue
            values = sample.get("metrics") or {}
            for name, series in raw.items():
                value = values.get(name)
                if isinstance(value, int | float):
                    series.append(Point(dt.datetime.fromtimestamp(ts, dt.UTC), float(value)))
    for series in raw.values():
        series.sort(key=lambda point: point.ts)
    return {name: downsample(points, since, until, max_points) for name, points in raw.items()}
