"""Edge health collectors: each one a small source of ``Metrics``, sampled together."""

from .base import MAX_METRICS, METRIC_KEY_RE, Collector, Metrics, collect_sample
from .context import CollectorContext, default_collectors
from .runner import (
    CommandError,
    CommandResult,
    CommandTimeout,
    Runner,
    ToolNotFound,
    default_runner,
)
from .smart import SmartHealth, parse_smart, query_smart, scan_smart

__all__ = [
    "MAX_METRICS",
    "METRIC_KEY_RE",
    "Collector",
    "CollectorContext",
    "CommandError",
    "CommandResult",
    "CommandTimeout",
    "Metrics",
    "Runner",
    "SmartHealth",
    "ToolNotFound",
    "collect_sample",
    "default_collectors",
    "default_runner",
    "parse_smart",
    "query_smart",
    "scan_smart",
]
