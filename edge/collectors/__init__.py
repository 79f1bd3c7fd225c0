"""Edge health collectors: each one a small source of ``Metrics``, sampled together."""

from .base import (
    METRIC_KEY_RE,
    Collector,
    Metrics,
    SampleSink,
    collect_sample,
    sample_forever,
    sample_interval,
)
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
    "METRIC_KEY_RE",
    "Collector",
    "CollectorContext",
    "CommandError",
    "CommandResult",
    "CommandTimeout",
    "Metrics",
    "Runner",
    "SampleSink",
    "SmartHealth",
    "ToolNotFound",
    "collect_sample",
    "default_collectors",
    "default_runner",
    "parse_smart",
    "query_smart",
    "sample_forever",
    "sample_interval",
    "scan_smart",
]
