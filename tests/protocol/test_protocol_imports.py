"""edge.protocol stays light: the standard library and msgspec, nothing else."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("fastapi", "sqlalchemy", "aiortc", "paho", "pydantic", "aiomqtt", "starlette", "av")


def test_import_loads_nothing_heavy() -> None:
    code = "import edge.protocol, json, sys; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    loaded = json.loads(out)
    assert "msgspec" in loaded
    heavy = [m for m in loaded if m.split(".")[0] in HEAVY]
    assert heavy == []
