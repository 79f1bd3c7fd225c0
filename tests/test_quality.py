"""The code stays lint-clean and typed (ruff, mypy), and the contract stays light."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600
    )


def test_ruff_is_clean() -> None:
    r = _run("ruff", "check", "edge", "control_plane", "tests")
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.slow
def test_mypy_is_clean() -> None:
    r = _run("mypy")
    assert r.returncode == 0, r.stdout + r.stderr


def test_py_typed_shipped() -> None:
    assert (ROOT / "edge" / "py.typed").exists()
    assert (ROOT / "control_plane" / "py.typed").exists()


def test_control_plane_imports_only_the_contract_from_edge() -> None:
    offenders = []
    for path in (ROOT / "control_plane").rglob("*.py"):
        for line in path.read_text().splitlines():
            stripped = line.strip()
            if stripped.startswith(("from edge", "import edge")) and not (
                stripped.startswith(
                    ("from edge import protocol", "from edge.protocol", "import edge.protocol")
                )
            ):
                offenders.append(f"{path.relative_to(ROOT)}: {stripped}")
    # The demo builds real edge configs for its simulated PCs: the one allowed exception.
    offenders = [
        o for o in offenders if not o.startswith("control_plane/demo.py: from edge.config")
    ]
    assert offenders == []
