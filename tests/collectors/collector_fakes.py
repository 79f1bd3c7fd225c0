"""Fakes shared by the collector tests: a command runner that answers from recordings."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from edge.collectors.runner import CommandResult, ToolNotFound

Answer = CommandResult | Exception | Callable[[Sequence[str]], CommandResult]


class FakeRunner:
    """A Runner answering from a table of argv -> recorded result; logs every call."""

    def __init__(self, answers: Mapping[tuple[str, ...], Answer] | None = None) -> None:
        self.answers: dict[tuple[str, ...], Answer] = dict(answers or {})
        self.calls: list[tuple[str, ...]] = []

    def __call__(self, argv: Sequence[str], *, timeout: float = 10.0) -> CommandResult:
        key = tuple(argv)
        self.calls.append(key)
        answer = self.answers.get(key)
        if answer is None:
            raise ToolNotFound(f"{argv[0]}: not installed")
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, CommandResult):
            return answer
        return answer(argv)


def result(
    argv: Sequence[str], stdout: str, returncode: int = 0, stderr: str = ""
) -> CommandResult:
    """A recorded command result."""
    return CommandResult(tuple(argv), returncode, stdout, stderr)
