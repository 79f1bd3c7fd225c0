"""collect_sample: one failing collector never stops the others; metrics are validated."""

from __future__ import annotations

import math
from typing import Any

import pytest

from edge.collectors import (
    METRIC_KEY_RE,
    Collector,
    CollectorContext,
    Metrics,
    collect_sample,
    default_collectors,
)
from edge.collectors.base import describe_error, metric_label


class Fixed:
    def __init__(self, name: str, metrics: dict[str, Any]) -> None:
        self.name = name
        self._metrics = metrics

    def collect(self) -> Metrics:
        return dict(self._metrics)


class Broken:
    name = "broken"

    def collect(self) -> Metrics:
        raise OSError(5, "Input/output error")


class WrongType:
    name = "wrong"

    def collect(self) -> Metrics:
        return [1.0]  # type: ignore[return-value]


def test_failing_collector_is_reported_and_the_others_continue() -> None:
    collectors: list[Collector] = [
        Fixed("cpu", {"cpu.percent": 12.5}),
        Broken(),
        Fixed("mem", {"mem.used_pct": 40}),
    ]
    ts, metrics, errors = collect_sample(collectors, clock=lambda: 1_700_000_000.0)
    assert ts == 1_700_000_000.0
    assert metrics == {"cpu.percent": 12.5, "mem.used_pct": 40.0}
    assert errors == {"broken": "OSError: [Errno 5] Input/output error"}


def test_non_mapping_result_is_an_error() -> None:
    _, metrics, errors = collect_sample([WrongType(), Fixed("ok", {"a": 1})])
    assert metrics == {"a": 1.0}
    assert errors["wrong"].startswith("TypeError: collect() returned list")


def test_bad_keys_and_values_are_dropped_and_named() -> None:
    raw = {
        "good.key": 1,
        "Bad-Key": 2.0,
        "x" * 65: 3.0,
        "nan.value": math.nan,
        "inf.value": math.inf,
        "text.value": "high",
        "flag.on": True,
    }
    _, metrics, errors = collect_sample([Fixed("mixed", raw)])
    assert metrics == {"good.key": 1.0, "flag.on": 1.0}
    message = errors["mixed"]
    assert message.startswith("ValueError: ")
    for part in ("'Bad-Key'", "nan.value: not finite", "inf.value", "text.value: not a number"):
        assert part in message


def test_keyboard_interrupt_is_not_swallowed() -> None:
    class Interrupted:
        name = "interrupted"

        def collect(self) -> Metrics:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        collect_sample([Interrupted()])


def test_long_error_messages_are_shortened() -> None:
    text = describe_error(RuntimeError("x" * 1000))
    assert len(text) <= 200
    assert text.startswith("RuntimeError: xxx")
    assert describe_error(RuntimeError()) == "RuntimeError"


@pytest.mark.parametrize(
    ("raw", "label"),
    [
        ("nvme0n1", "nvme0n1"),
        ("acpitz-0", "acpitz_0"),
        ("Package id 0", "package_id_0"),
        ("--", "unknown"),
    ],
)
def test_metric_label(raw: str, label: str) -> None:
    assert metric_label(raw) == label
    assert METRIC_KEY_RE.match(f"temp.{metric_label(raw)}.max_c")


def test_default_collectors_on_this_machine_never_raise(tmp_path: Any) -> None:
    ctx = CollectorContext(
        rtc_dir=tmp_path / "no-rtc", smartctl=None, outbox_depth=lambda: 7, timesync_dir=tmp_path
    )
    collectors = default_collectors(ctx)
    names = [c.name for c in collectors]
    assert "rtc" not in names and "smart" not in names
    assert {"cpu", "load", "memory", "disk.root", "uptime", "net", "ntp", "outbox"} <= set(names)
    _, metrics, errors = collect_sample(collectors)
    for key in metrics:
        assert METRIC_KEY_RE.match(key), key
    assert metrics["outbox.depth"] == 7.0
    assert 0.0 <= metrics["mem.used_pct"] <= 100.0
    assert metrics["disk.root.total_bytes"] > 0
    assert metrics["uptime_s"] > 0
    assert "cpu.percent" in metrics
    # Whatever fails here (no NTP source in a container, say) is reported, not raised.
    for name, message in errors.items():
        assert name in names
        assert message


def test_default_collectors_include_rtc_and_smart_when_present(tmp_path: Any) -> None:
    rtc = tmp_path / "rtc0"
    rtc.mkdir()
    ctx = CollectorContext(
        rtc_dir=rtc, smartctl="/usr/sbin/smartctl", disk_paths={"root": "/", "Data": "/tmp"}
    )
    names = [c.name for c in default_collectors(ctx)]
    assert {"rtc", "smart", "disk.root", "disk.data"} <= set(names)
    assert "outbox" not in names


def test_trailing_newline_is_not_a_valid_key() -> None:
    _, metrics, errors = collect_sample([Fixed("nl", {"cpu.percent\n": 1.0})])
    assert metrics == {}
    assert "invalid metric key" in errors["nl"]


def test_sample_is_capped_and_the_first_collectors_win() -> None:
    first = Fixed("first", {f"a.{i}": i for i in range(150)})
    second = Fixed("second", {f"b.{i}": i for i in range(100)})
    third = Fixed("third", {"c.0": 0})
    _, metrics, errors = collect_sample([first, second, third], max_metrics=200)
    assert len(metrics) == 200
    assert all(f"a.{i}" in metrics for i in range(150))
    assert "b.49" in metrics and "b.50" not in metrics
    assert errors == {
        "second": "ValueError: 50 metrics over the limit of 200 per sample",
        "third": "ValueError: 1 metrics over the limit of 200 per sample",
    }
