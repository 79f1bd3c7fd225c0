"""The search benchmark's code, run tiny in the normal suite so it keeps working.

Its figures are printed by the real benchmark (tests/bench, ``-m bench``), never asserted.
"""

from __future__ import annotations

from pathlib import Path

from tests.bench.bench_marketplace_search import (
    BEGIN,
    END,
    Figures,
    run_benchmark,
    section,
    write_section,
)


def test_tiny_benchmark_runs(db_url: str) -> None:
    # db_url comes migrated; run_benchmark migrates again (a no-op) as it would a fresh one.
    figures = run_benchmark(db_url, workers=40, jobs=200, queries=25)
    assert (figures.workers, figures.jobs, figures.queries) == (40, 200, 25)
    assert db_url.startswith(figures.database)
    for value in (figures.api_p50_ms, figures.api_p95_ms, figures.service_p95_ms):
        assert value > 0


def test_section_replaces_only_its_own_part(tmp_path: Path) -> None:
    path = tmp_path / "BENCHMARKS.md"
    figures = [Figures("sqlite", 10, 20, 5, 1.0, 1.0, 2.0, 3.0, 0.5, 4.0)]
    write_section(path, section(figures, when="then"))
    assert path.read_text().startswith("# Benchmarks\n\n" + BEGIN)
    path.write_text(path.read_text() + "\n## Other feature\n\nkeep me\n")
    figures[0].api_p95_ms = 99.0
    write_section(path, section(figures, when="now"))
    text = path.read_text()
    assert text.count(BEGIN) == 1 and text.count(END) == 1
    assert "| sqlite | 10 | 20 | 5 | 1.0 ms | 99.0 ms |" in text and "**no**" in text
    assert text.count("| 0.0 |") == 1  # the load average column
    assert "run now" in text and "run then" not in text
    assert text.rstrip().endswith("keep me")
