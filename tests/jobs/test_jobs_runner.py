"""The edge job runner: exactly once across restarts, rejections with reasons, timeouts.

The runner is driven with real notify payloads and its real journal on disk; the operations
here are small test operations (the real ones have their own tests).
"""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from typing import Annotated, Any

import msgspec
import pytest

from edge import protocol as p
from edge.config import EdgeConfig, MqttConfig, PathsConfig
from edge.jobs import AwaitRestart, JobEnv, JobFailed, JobRunner
from edge.jobs.operations import BaseOperation, ExecutionContext
from tests.support.wait import async_wait_until


class CountParams(msgspec.Struct, forbid_unknown_fields=True):
    times: Annotated[int, msgspec.Meta(ge=1, le=5)] = 1


class Count(BaseOperation):
    """Counts its runs; reports progress once."""

    name = "count"
    params = CountParams
    runs: list[str]

    def __init__(self) -> None:
        self.runs = []

    async def run(self, ctx: ExecutionContext, params: CountParams) -> dict[str, str]:
        self.runs.append(ctx.execution_id)
        await ctx.progress(50, step="half way")
        return {"times": str(params.times)}


class Slow(BaseOperation):
    name = "slow"
    params = CountParams
    cancellable = True

    async def run(self, ctx: ExecutionContext, params: CountParams) -> dict[str, str]:
        await asyncio.sleep(3600)
        return {}


class Broken(BaseOperation):
    name = "broken"
    params = CountParams

    async def run(self, ctx: ExecutionContext, params: CountParams) -> dict[str, str]:
        if params.times == 1:
            raise JobFailed("disk full", free="0")
        raise RuntimeError("a bug")


class Restarting(BaseOperation):
    name = "restarting"
    params = CountParams

    async def run(self, ctx: ExecutionContext, params: CountParams) -> dict[str, str]:
        ctx.note({"before": "boot-1"})
        raise AwaitRestart("rebooting")

    async def resume(self, ctx: ExecutionContext, note: dict[str, Any]) -> dict[str, str]:
        return {"was": str(note["before"])}


class Harness:
    """A runner on a state dir, collecting what it publishes."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.updates: list[p.JobUpdate] = []
        self.busy: list[bool] = []
        self.seq = itertools.count(1)
        self.count = Count()
        self.runner = self.new_runner()

    def new_runner(self) -> JobRunner:
        config = EdgeConfig(
            device_id="pc-runner-1",
            mqtt=MqttConfig(password="x"),
            paths=PathsConfig(state_dir=str(self.state)),
        )
        return JobRunner(
            journal_path=self.state / "jobs.json",
            operations={op.name: op for op in (self.count, Slow(), Broken(), Restarting())},
            env=JobEnv(config=config),
            publish=self.updates.append,
            next_seq=lambda: next(self.seq),
            on_busy=self.busy.append,
        )

    def outcome(self, execution_id: str) -> p.JobUpdate | None:
        final = [
            u for u in self.updates if u.execution_id == execution_id and u.status != "IN_PROGRESS"
        ]
        assert len(final) <= 1, f"more than one outcome for {execution_id}: {final}"
        return final[0] if final else None


def notify(*executions: tuple[str, str, dict[str, Any]], timeout_s: int = 600) -> bytes:
    return p.encode(
        p.JobsNotify(
            ts=p.now(),
            executions=[
                p.JobExecution(
                    execution_id=eid,
                    job_id="job-1",
                    operation=op,
                    parameters=params,
                    timeout_s=timeout_s,
                )
                for eid, op, params in executions
            ],
        )
    )


async def _running(h: Harness) -> asyncio.Task[None]:
    task = asyncio.create_task(h.runner.run())
    await asyncio.sleep(0)
    return task


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_each_execution_runs_once_even_across_restarts(tmp_path: Path) -> None:
    async def main() -> None:
        h = Harness(tmp_path)
        task = await _running(h)
        payload = notify(("ex-1", "count", {"times": 2}), ("ex-2", "count", {}))
        await h.runner.on_notify(payload)
        await h.runner.on_notify(payload)  # the same notify twice (QoS 1 redelivery)
        await async_wait_until(lambda: h.outcome("ex-2"), message="both done")
        await h.runner.on_notify(payload)  # and once more after they finished
        await async_wait_until(lambda: h.runner.idle.is_set(), message="idle")
        await _stop(task)
        assert h.count.runs == ["ex-1", "ex-2"]
        first = [u for u in h.updates if u.execution_id == "ex-1"]
        assert [(u.status, u.progress) for u in first] == [
            ("IN_PROGRESS", 0),
            ("IN_PROGRESS", 50),
            ("SUCCEEDED", 100),
        ]
        assert first[1].details == {"step": "half way"}
        assert first[-1].details == {"times": "2"}
        seqs = [u.seq for u in h.updates]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        assert h.busy == [True, False, True, False]

        # A new agent process on the same state dir: the journal remembers.
        h.runner = h.new_runner()
        task = await _running(h)
        await h.runner.on_notify(payload)
        await async_wait_until(lambda: h.runner.idle.is_set(), message="idle")
        await _stop(task)
        assert h.count.runs == ["ex-1", "ex-2"]

    asyncio.run(main())


def test_unknown_operations_and_bad_parameters_are_rejected_with_the_reason(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        h = Harness(tmp_path)
        task = await _running(h)
        await h.runner.on_notify(
            notify(
                ("ex-a", "format-disk", {}),
                ("ex-b", "count", {"times": 9}),
                ("ex-c", "count", {"colour": "red"}),
                ("ex-d", "count", {"times": "two"}),
            )
        )
        await async_wait_until(lambda: h.outcome("ex-d"), message="all refused")
        await _stop(task)
        reasons = {eid: h.outcome(eid) for eid in ("ex-a", "ex-b", "ex-c", "ex-d")}
        assert all(u is not None and u.status == "REJECTED" for u in reasons.values())
        assert "operation: unknown operation 'format-disk'" in reasons["ex-a"].details["reason"]  # type: ignore[union-attr]
        assert "count" in reasons["ex-a"].details["reason"]  # type: ignore[union-attr]
        assert reasons["ex-b"].details["reason"].startswith("parameters.times:")  # type: ignore[union-attr]
        assert "colour" in reasons["ex-c"].details["reason"]  # type: ignore[union-attr]
        assert reasons["ex-d"].details["reason"].startswith("parameters.times:")  # type: ignore[union-attr]
        assert h.count.runs == []
        assert not [u for u in h.updates if u.status == "IN_PROGRESS"], "never started"

    asyncio.run(main())


def test_timeout_failure_bug_and_cancel(tmp_path: Path) -> None:
    async def main() -> None:
        h = Harness(tmp_path)
        task = await _running(h)
        await h.runner.on_notify(notify(("ex-slow", "slow", {}), timeout_s=1))
        await async_wait_until(lambda: h.outcome("ex-slow"), timeout=5, message="timed out")
        assert h.outcome("ex-slow").status == "TIMED_OUT"  # type: ignore[union-attr]
        assert "1 s" in h.outcome("ex-slow").details["reason"]  # type: ignore[union-attr]

        await h.runner.on_notify(
            notify(("ex-f", "broken", {"times": 1}), ("ex-bug", "broken", {"times": 2}))
        )
        await async_wait_until(lambda: h.outcome("ex-bug"), message="failures")
        assert h.outcome("ex-f").details == {"reason": "disk full", "free": "0"}  # type: ignore[union-attr]
        assert h.outcome("ex-bug").status == "FAILED"  # type: ignore[union-attr]
        assert "internal error" in h.outcome("ex-bug").details["reason"]  # type: ignore[union-attr]

        # The control plane cancels: the next notify no longer lists the running execution.
        await h.runner.on_notify(notify(("ex-c1", "slow", {})))
        await async_wait_until(
            lambda: any(u.execution_id == "ex-c1" for u in h.updates), message="started"
        )
        await h.runner.on_notify(notify())
        await async_wait_until(lambda: h.outcome("ex-c1"), message="canceled")
        assert h.outcome("ex-c1").status == "CANCELED"  # type: ignore[union-attr]
        await _stop(task)

    asyncio.run(main())


def test_interrupted_and_restarting_executions_after_a_restart(tmp_path: Path) -> None:
    async def main() -> None:
        h = Harness(tmp_path)
        task = await _running(h)
        await h.runner.on_notify(notify(("ex-r", "restarting", {}), ("ex-s", "slow", {})))
        await async_wait_until(
            lambda: [u for u in h.updates if u.execution_id == "ex-s"], message="slow started"
        )
        restarting = [u for u in h.updates if u.execution_id == "ex-r"]
        assert [u.status for u in restarting] == ["IN_PROGRESS", "IN_PROGRESS"]
        assert restarting[-1].details["step"] == "rebooting"
        await _stop(task)  # the agent stops while ex-s runs
        assert h.outcome("ex-s") is None

        h.runner = h.new_runner()
        task = await _running(h)
        await h.runner.on_notify(notify(("ex-r", "restarting", {}), ("ex-s", "slow", {})))
        await async_wait_until(lambda: h.outcome("ex-s") and h.outcome("ex-r"), message="both")
        assert h.outcome("ex-r").status == "SUCCEEDED"  # type: ignore[union-attr]
        assert h.outcome("ex-r").details == {"was": "boot-1"}  # type: ignore[union-attr]
        assert h.outcome("ex-s").status == "FAILED"  # type: ignore[union-attr]
        assert "interrupted" in h.outcome("ex-s").details["reason"]  # type: ignore[union-attr]
        await async_wait_until(lambda: h.runner.idle.is_set(), message="idle")
        await _stop(task)

    asyncio.run(main())


def test_a_damaged_journal_is_set_aside(tmp_path: Path) -> None:
    (tmp_path / "jobs.json").write_text("{not json")
    h = Harness(tmp_path)
    assert not h.runner.journal.known("ex-1")
    assert (tmp_path / "jobs.damaged").exists()
    refused = p.encode(p.JobsGet(ts=p.now()))
    asyncio.run(h.runner.on_notify(refused))  # wrong shape: logged, nothing queued
    assert h.runner.idle.is_set()
