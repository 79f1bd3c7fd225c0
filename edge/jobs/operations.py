"""What an operation is, what it gets to work with, and how it says how it went.

An operation checks its parameters (a msgspec Struct: a wrong one is REJECTED with the field
named), runs, and returns details for SUCCEEDED; it raises :class:`JobFailed` for FAILED.
Operations that end the agent on purpose (reboot, update-agent, test-wake) write a note,
raise :class:`AwaitRestart`, and finish in :meth:`Operation.resume` after the next start.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar

import msgspec

from edge import protocol as p
from edge.collectors.runner import Runner, default_runner
from edge.config import EdgeConfig

from .device_http import DeviceHttp

S = TypeVar("S", bound=msgspec.Struct)


class JobRejected(Exception):
    """The device will not run this: unknown operation or invalid parameters."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class JobFailed(Exception):
    """The operation ran and did not succeed; ``details`` say how far it got."""

    def __init__(self, reason: str, **details: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.details = details


class AwaitRestart(Exception):
    """The operation restarts the agent (or the PC): its outcome comes after the restart."""

    def __init__(self, message: str, **details: str) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class Rebooter(Protocol):
    """A power backend that can also reboot (``SystemdPower``, ``RecordingPower``)."""

    async def reboot(self) -> None:
        """Reboot the machine."""
        ...

    async def poweroff(self) -> None:
        """Power the machine off."""
        ...


@dataclass
class JobEnv:
    """Everything operations may use, built once from the config and the daemon."""

    config: EdgeConfig
    config_path: Path | None = None
    clock: Callable[[], float] = time.time
    power: Rebooter | None = None
    http: DeviceHttp | None = None
    run: Runner = default_runner
    boot_time: float | None = None
    # The result of a wake test armed before this boot (``edge.commission.check_commission``).
    boot_check: dict[str, Any] | None = None
    # Stop the wake service re-arming the RTC (test-wake arms its own alarm).
    pause_wake: Callable[[], Awaitable[None]] | None = None
    # Apply a new configuration to the running daemon where it can be applied live.
    on_config: Callable[[EdgeConfig], None] | None = None
    build_report: Callable[..., dict[str, Any]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


Progress = Callable[..., Awaitable[None]]


@dataclass
class ExecutionContext:
    """One execution as its operation sees it."""

    execution: p.JobExecution
    env: JobEnv
    progress: Progress  # await progress(percent, **details): an IN_PROGRESS update
    note: Callable[[dict[str, Any]], None]  # persist what a resume after a restart needs

    @property
    def execution_id(self) -> str:
        """The id the control plane gave this execution."""
        return self.execution.execution_id


class BaseOperation:
    """A remote operation the device knows how to do (subclass and set the class variables).

    ``run`` does it and returns details for SUCCEEDED, or raises JobFailed / AwaitRestart;
    ``resume`` finishes after the restart the operation asked for.
    """

    name: ClassVar[str] = ""
    params: ClassVar[type[msgspec.Struct]] = msgspec.Struct
    cancellable: ClassVar[bool] = False  # may be stopped halfway when the job is canceled
    resume_before_connect: ClassVar[bool] = False  # see JobRunner.prepare

    async def run(self, ctx: ExecutionContext, params: Any) -> dict[str, str]:
        """Do the operation."""
        raise NotImplementedError

    async def resume(self, ctx: ExecutionContext, note: dict[str, Any]) -> dict[str, str]:
        """An operation without a resume was cut short by the agent stopping."""
        raise JobFailed("interrupted: the agent stopped while this ran")


Operation = BaseOperation


def decode_params(params_type: type[S], parameters: Mapping[str, Any]) -> S:
    """The parameters as ``params_type``; JobRejected naming the field otherwise."""
    try:
        return msgspec.convert(dict(parameters), params_type)
    except msgspec.ValidationError as exc:
        message = str(exc)
        reason, sep, where = message.rpartition(" - at `")
        if sep:
            path = where.rstrip("`").replace("$", "parameters", 1)
            raise JobRejected(f"{path}: {reason}") from None
        # Unknown fields and struct-level problems have no path.
        raise JobRejected(f"parameters: {message}") from None


def operation_table(operations: list[Operation]) -> dict[str, Operation]:
    """Name -> operation."""
    return {op.name: op for op in operations}
