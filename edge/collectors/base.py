"""What a health collector is, and how one sample is taken from many of them."""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "MAX_METRICS",
    "METRIC_KEY_RE",
    "Collector",
    "Metrics",
    "collect_sample",
    "describe_error",
    "metric_label",
]

log = logging.getLogger(__name__)

Metrics = dict[str, float]

# Same rule as the MQTT contract (edge.protocol): \Z, because $ would let a trailing newline in.
METRIC_KEY_RE = re.compile(r"^[a-z0-9_.]{1,64}\Z")
# The contract caps a sample at 200 metrics; a bigger one would be rejected whole.
MAX_METRICS = 200

# An error string travels inside a telemetry batch (64 KiB at most): keep each one short.
_MAX_ERROR_LEN = 200

_LABEL_BAD = re.compile(r"[^a-z0-9_]+")


@runtime_checkable
class Collector(Protocol):
    """A named source of metrics; ``collect`` is synchronous and may raise."""

    name: str

    def collect(self) -> Metrics: ...


def metric_label(raw: str, *, max_len: int = 24) -> str:
    """Turn a device or chip name (``nvme0n1``, ``acpitz-0``) into a metric key segment."""
    label = _LABEL_BAD.sub("_", raw.lower()).strip("_")[:max_len]
    return label or "unknown"


def describe_error(exc: BaseException) -> str:
    """``"ExcType: message"``, shortened to fit a telemetry batch."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text if len(text) <= _MAX_ERROR_LEN else text[: _MAX_ERROR_LEN - 1] + "…"


def _clean(raw: Mapping[str, Any]) -> tuple[Metrics, list[str]]:
    """Keep only well-formed, finite metrics; say what was dropped and why."""
    good: Metrics = {}
    dropped: list[str] = []
    for key, value in raw.items():
        if not isinstance(key, str) or not METRIC_KEY_RE.match(key):
            shown = repr(key) if len(repr(key)) <= 40 else repr(key)[:39] + "…"
            dropped.append(f"invalid metric key {shown}")
            continue
        # bool is an int: True/False become 1.0/0.0, which is what 1/0 flags mean.
        if not isinstance(value, int | float):
            dropped.append(f"{key}: not a number ({type(value).__name__})")
            continue
        number = float(value)
        # NaN and infinity cannot be written as JSON and mean "no reading" anyway.
        if not math.isfinite(number):
            dropped.append(f"{key}: not finite")
            continue
        good[key] = number
    return good, dropped


def collect_sample(
    collectors: Sequence[Collector],
    clock: Callable[[], float] = time.time,
    *,
    max_metrics: int = MAX_METRICS,
) -> tuple[float, Metrics, dict[str, str]]:
    """Run every collector once: ``(ts, metrics, errors)``; never raises for a collector.

    Beyond ``max_metrics`` the later collectors' metrics are dropped (and said so), so the
    basic ones listed first always get through.
    """
    ts = clock()
    metrics: Metrics = {}
    errors: dict[str, str] = {}
    for collector in collectors:
        name = getattr(collector, "name", type(collector).__name__)
        try:
            raw = collector.collect()
            if not isinstance(raw, Mapping):
                raise TypeError(f"collect() returned {type(raw).__name__}, not a mapping")
            good, dropped = _clean(raw)
        except Exception as exc:  # one broken sensor must not cost the whole sample
            log.debug("collector %s failed", name, exc_info=True)
            errors[name] = describe_error(exc)
            continue
        new_keys = [k for k in good if k not in metrics]
        room = max(max_metrics - len(metrics), 0)
        if len(new_keys) > room:
            over = new_keys[room:]
            for key in over:
                del good[key]
            dropped.append(f"{len(over)} metrics over the limit of {max_metrics} per sample")
        metrics.update(good)
        if dropped:
            errors[name] = describe_error(ValueError("; ".join(dropped)))
    return ts, metrics, errors
