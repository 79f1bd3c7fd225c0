"""Collect the benchmark files (``bench_*.py``) when the folder is run: ``pytest tests/bench``.

pytest's ``python_files`` pattern finds only ``test_*.py``; a file named on the command line
is collected anyway, so this adds the rest without collecting anything twice. Each benchmark
skips itself unless asked for (``-m bench`` or ``DIFRONTE_BENCH=1``), so the normal suite
only pays for collecting them.
"""

from __future__ import annotations

from pathlib import Path

import pytest


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Module | None:
    """A module for every ``bench_*.py`` not already named on the command line."""
    if (
        file_path.suffix == ".py"
        and file_path.name.startswith("bench_")
        and not parent.session.isinitpath(file_path)
    ):
        module: pytest.Module = pytest.Module.from_parent(parent, path=file_path)
        return module
    return None
