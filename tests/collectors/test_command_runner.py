"""The default command runner against real processes."""

from __future__ import annotations

import sys

import pytest

from edge.collectors.runner import (
    CommandResult,
    CommandTimeout,
    ToolNotFound,
    default_runner,
    find_tool,
)


def test_runs_and_captures_output_with_nonzero_status() -> None:
    done = default_runner(
        [
            sys.executable,
            "-c",
            "import sys; print('out'); print('bad', file=sys.stderr); sys.exit(3)",
        ]
    )
    assert (done.returncode, done.stdout, done.stderr) == (3, "out\n", "bad\n")
    assert done.first_error_line() == "bad"


def test_runs_in_the_c_locale() -> None:
    done = default_runner([sys.executable, "-c", "import os; print(os.environ['LC_ALL'])"])
    assert done.stdout.strip() == "C"


def test_missing_tool() -> None:
    with pytest.raises(ToolNotFound, match="no-such-tool-difronte: not installed"):
        default_runner(["no-such-tool-difronte", "--version"])
    with pytest.raises(ToolNotFound):
        default_runner(["/nonexistent/bin/tool"])
    assert find_tool("no-such-tool-difronte") is None


def test_timeout_kills_the_command() -> None:
    with pytest.raises(CommandTimeout, match=r"no answer within 0\.2 s"):
        default_runner([sys.executable, "-c", "import time; time.sleep(30)"], timeout=0.2)


def test_empty_argv_is_refused() -> None:
    with pytest.raises(ValueError, match="argv"):
        default_runner([])


def test_first_error_line_falls_back() -> None:
    assert CommandResult(("x",), 2, "", "").first_error_line() == "exit status 2"
    assert CommandResult(("x",), 2, "\n  only stdout\n", "").first_error_line() == "only stdout"
