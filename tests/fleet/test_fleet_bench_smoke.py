"""A tiny run of the ingest and outbox benchmarks, so their code keeps working.

The figures are not asserted (see tests/bench); that every batch was stored exactly once is.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench import bench_ingest

pytestmark = pytest.mark.slow


def test_ingest_benchmark_smoke(tmp_path: Path) -> None:
    figures = bench_ingest.run_benchmark(tmp_path, devices=20, burst=300, rate=200, seconds=1)
    assert figures.stored_batches == figures.expected_batches == 500
    assert figures.ceiling_rate > 0 and figures.burst_rate > 0 and figures.lag_p99 >= 0
    text = bench_ingest.section([figures], when="now")
    assert text.startswith(bench_ingest.BEGIN) and "| sqlite | 20 |" in text
