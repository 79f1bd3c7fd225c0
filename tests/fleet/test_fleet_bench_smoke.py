"""A tiny run of the ingest and outbox benchmarks, so their code keeps working.

The figures are not asserted (see tests/bench); that every batch was stored exactly once is.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench import bench_ingest, bench_outbox

pytestmark = pytest.mark.slow


def test_ingest_benchmark_smoke(tmp_path: Path) -> None:
    figures = bench_ingest.run_benchmark(tmp_path, devices=20, burst=300, rate=200, seconds=1)
    assert figures.stored_batches == figures.expected_batches
    assert figures.expected_batches == 300 + 200 + int(figures.within_rate)
    assert figures.ceiling_rate > 0 and figures.burst_rate > 0 and figures.lag_p99 >= 0
    text = bench_ingest.section([figures], when="now")
    assert text.startswith(bench_ingest.BEGIN) and "| sqlite | 20 |" in text


def test_outbox_benchmark_smoke(tmp_path: Path) -> None:
    figures = bench_outbox.run_benchmark(tmp_path, batches=200)
    assert figures.delivered == 200
    assert figures.rate > 0 and figures.rate_window_1 > 0 and figures.fill_rate > 0
    assert bench_outbox.section(figures, when="now").startswith(bench_outbox.BEGIN)


def test_benchmark_sections_replace_only_their_own(tmp_path: Path) -> None:
    doc = tmp_path / "BENCHMARKS.md"
    doc.write_text("# Benchmarks\n\n<!-- other:begin -->\nkeep me\n<!-- other:end -->\n")
    one = bench_ingest.BEGIN + "\nfirst\n" + bench_ingest.END + "\n"
    two = bench_ingest.BEGIN + "\nsecond\n" + bench_ingest.END + "\n"
    bench_ingest.write_section(doc, one)
    bench_ingest.write_section(doc, two)
    text = doc.read_text()
    assert "keep me" in text and "second" in text and "first" not in text
    assert text.count(bench_ingest.BEGIN) == 1
