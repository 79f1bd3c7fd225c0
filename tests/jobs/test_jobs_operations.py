"""The device operations, against the real control plane app (in process, over ASGI).

Hardware seams are the project's fakes: the recording power backend, the fake kernel RTC
directory, a command runner that plays journalctl. Uploads and the credential rotation go
through the device's real HTTP client into the real API, and are checked through the API.
"""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from edge import protocol as p
from edge.collectors.runner import CommandResult, ToolNotFound
from edge.commission import check_commission
from edge.config import (
    EdgeConfig,
    JobsConfig,
    MqttConfig,
    PathsConfig,
    PowerConfig,
    dump_config,
    load_config,
)
from edge.jobs import AwaitRestart, DeviceHttp, JobEnv, JobFailed, JobRejected, job_power
from edge.jobs.basic_ops import CollectLogs, Reboot, RunDiagnostics, TestWake, cap_sections
from edge.jobs.config_ops import RotateCredentials, SetConfig
from edge.jobs.operations import BaseOperation, ExecutionContext, decode_params
from edge.wake import FakeRtcDir, RecordingPower
from tests.jobs.jobs_support import Api

REPORT: dict[str, Any] = {
    "v": 1,
    "generated_at": 1_709_288_553.0,
    "camera": {"present": False, "devices": [], "working": None},
    "problems": {"camera": "no video devices"},
}


class Device:
    """One device's config file, state dir and job environment, talking to ``api``'s app."""

    def __init__(self, api: Api, tmp: Path, device_id: str = "pc-ops-1") -> None:
        self.api = api
        self.password = api.register(device_id)
        self.config_path = tmp / "edge.toml"
        self.config = EdgeConfig(
            device_id=device_id,
            control_plane_url="http://cp.test",
            mqtt=MqttConfig(password=self.password, port=1883),
            paths=PathsConfig(
                state_dir=str(tmp / "state"), rtc_dir=str(tmp / "rtc"), fake_rtc=True
            ),
            power=PowerConfig(backend="record", record_file=str(tmp / "power.jsonl")),
            jobs=JobsConfig(journal_units=["difronte-edge.service", "other.service"]),
        )
        self.config.state_dir.mkdir(parents=True)
        self.config_path.write_bytes(dump_config(self.config))
        transport = httpx.ASGITransport(app=api.client.app)  # type: ignore[arg-type]
        self.applied: list[EdgeConfig] = []
        self.env = JobEnv(
            config=self.config,
            config_path=self.config_path,
            power=job_power(self.config, lambda: 1000.0),
            http=DeviceHttp(
                self.config.control_plane_url,
                device_id,
                lambda: self.config.mqtt.password,
                transport=transport,
            ),
            boot_time=5000.0,
            on_config=self.applied.append,
        )
        self.progress: list[tuple[int, dict[str, Any]]] = []
        self.notes: list[dict[str, Any]] = []

    def ctx(self, operation: str, execution_id: str = "ex-1") -> ExecutionContext:
        async def progress(pct: int, **details: Any) -> None:
            self.progress.append((pct, details))

        execution = p.JobExecution(execution_id=execution_id, job_id="j", operation=operation)
        return ExecutionContext(execution, self.env, progress, self.notes.append)

    def run(self, op: BaseOperation, params: dict[str, Any], eid: str = "ex-1") -> dict[str, str]:
        decoded = decode_params(op.params, params)
        return asyncio.run(op.run(self.ctx(op.name, eid), decoded))

    def power_actions(self) -> list[str]:
        return [a["action"] for a in RecordingPower(self.config.power.record_file or "").actions()]


@pytest.fixture
def device(local_cp: Api, tmp_path: Path) -> Device:
    return Device(local_cp, tmp_path)


def test_run_diagnostics_uploads_the_report(device: Device) -> None:
    seen: list[bool] = []

    def build(*, test_devices: bool = False) -> dict[str, Any]:
        seen.append(test_devices)
        return REPORT

    device.env.build_report = build
    details = device.run(RunDiagnostics(), {"test_devices": True}, eid="ex-diag")
    assert seen == [True]
    assert "no_camera" in details["issues"]
    assert details["problems"] == "1"
    api = device.api
    stored = api.client.get(
        "/api/v1/devices/pc-ops-1/diagnostics/latest", headers=api.headers
    ).json()
    assert str(stored["id"]) == details["report_id"]
    assert stored["report"] == REPORT and stored["execution_id"] == "ex-diag"
    assert [pct for pct, _ in device.progress] == [10, 70]

    device.env.http = None
    with pytest.raises(JobFailed, match="control_plane_url"):
        device.run(RunDiagnostics(), {})


def test_collect_logs_caps_the_size_and_uploads(device: Device, tmp_path: Path) -> None:
    calls: list[Sequence[str]] = []

    def journalctl(argv: Sequence[str], *, timeout: float = 10.0) -> CommandResult:
        calls.append(argv)
        if "--unit=other.service" in argv:
            raise ToolNotFound("journalctl: not installed")
        text = "".join(
            f"2026-03-01T09:00:{i % 60:02d} edge[1]: journal line {i}\n" for i in range(400)
        )
        return CommandResult(tuple(argv), 0, text)

    log_file = tmp_path / "daemon.log"
    log_file.write_text("".join(f"daemon line {i}\n" for i in range(5000)))
    device.env.run = journalctl
    device.env.clock = lambda: 1_772_355_600.0
    device.config.jobs.log_files = [str(log_file), str(tmp_path / "missing.log")]
    details = device.run(CollectLogs(), {"since_s": 3600, "max_bytes": 8192}, eid="ex-logs")
    assert details["truncated"] == "yes"
    assert int(details["bytes"]) <= 8192
    assert "--since=@1772352000" in calls[0]
    api = device.api
    r = api.client.get(f"/api/v1/devices/pc-ops-1/logs/{details['bundle_id']}", headers=api.headers)
    text = r.text
    assert "===== journal difronte-edge.service =====" in text
    assert "journal line 399" in text, "the newest journal lines are kept"
    assert "(journal not read: journalctl: not installed)" in text
    assert "daemon line 4999" in text and "daemon line 0\n" not in text
    assert "missing.log =====\n(not read: No such file or directory)" in text


def test_cap_sections_shares_the_budget_fairly() -> None:
    small, big = ("small", b"a\nb\n"), ("big", b"".join(b"x%d\n" % i for i in range(1000)))
    out, truncated = cap_sections([small, big], 200)
    assert truncated and len(out) <= 200
    assert b"===== small =====\na\nb\n" in out, "small sections stay whole"
    assert out.rstrip().endswith(b"x999")
    whole, cut = cap_sections([small], 1000)
    assert not cut and whole == b"===== small =====\na\nb\n\n"


def test_set_config_validates_everything_and_writes_atomically(device: Device) -> None:
    before = device.config_path.read_bytes()
    bad = [
        (
            {"settings": {"mqtt.host": "evil.example"}},
            "parameters.settings.mqtt.host: not settable",
        ),
        ({"settings": {"telemetry.interval_s": -5}}, "parameters.settings.telemetry.interval_s"),
        ({"settings": {"timezone": 3}}, "parameters.settings.timezone"),
        ({"settings": {}}, "parameters.settings"),
    ]
    for params, field in bad:
        with pytest.raises(JobRejected) as caught:
            device.run(SetConfig(), params)
        assert caught.value.reason.startswith(field), caught.value.reason
    assert device.config_path.read_bytes() == before, "a refused change touches nothing"

    details = device.run(
        SetConfig(), {"settings": {"telemetry.interval_s": 30, "timezone": "Europe/Paris"}}
    )
    assert details["changed"] == "telemetry.interval_s,timezone"
    assert details["applied_now"] == "telemetry.interval_s"
    assert details["at_next_start"] == "timezone"
    saved = load_config(device.config_path)
    assert saved.telemetry.interval_s == 30 and saved.timezone == "Europe/Paris"
    assert saved.mqtt.password == device.password, "the rest is kept"
    assert device.applied[-1].telemetry.interval_s == 30
    assert device.config_path.stat().st_mode & 0o777 == 0o600
    assert not list(device.config_path.parent.glob(".edge.toml.*")), "no temporary left"


def test_rotate_credentials_and_finish_a_rotation_cut_short(device: Device) -> None:
    api = device.api
    old = device.password
    details = device.run(RotateCredentials(), {})
    assert details == {"applied": "at the next broker connection"}
    new = device.config.mqtt.password
    assert new != old and len(new) >= 32
    assert load_config(device.config_path).mqtt.password == new
    assert device.notes == [{"password": new}]
    log = gzip.compress(b"x")
    base = "/api/v1/devices/pc-ops-1/logs"
    assert api.client.post(base, content=log, auth=("pc-ops-1", old)).status_code == 401
    assert api.client.post(base, content=log, auth=("pc-ops-1", new)).status_code == 201

    # Cut short: the control plane took the next password, the agent stopped before saving.
    newer = "another-password-for-pc-ops-1-0123456789"
    assert device.env.http is not None
    asyncio.run(device.env.http.set_password(newer, auth_password=new))
    op = RotateCredentials()
    asyncio.run(op.resume(device.ctx(op.name), {"password": newer}))
    assert load_config(device.config_path).mqtt.password == newer
    assert api.client.post(base, content=log, auth=("pc-ops-1", newer)).status_code == 201
    with pytest.raises(JobFailed, match="interrupted"):
        asyncio.run(op.resume(device.ctx(op.name), {}))


def test_reboot_through_the_power_seam(device: Device) -> None:
    op = Reboot()
    with pytest.raises(AwaitRestart):
        device.run(op, {})
    assert device.power_actions() == ["reboot"]
    note = device.notes[-1]
    assert note["boot_time"] == 5000.0
    device.env.boot_time = 5300.0
    assert asyncio.run(op.resume(device.ctx(op.name), note))["rebooted"] == "yes"
    device.env.boot_time = 5000.0
    with pytest.raises(JobFailed, match="did not reboot"):
        asyncio.run(op.resume(device.ctx(op.name), note))
    with pytest.raises(JobRejected, match=r"parameters\.delay_s"):
        device.run(op, {"delay_s": -1})


def test_wake_test_arms_the_rtc_powers_off_and_judges_the_next_boot(device: Device) -> None:
    op = TestWake()
    paused: list[bool] = []

    async def pause() -> None:
        paused.append(True)

    device.env.pause_wake = pause
    device.env.clock = lambda: 1_772_355_600.0
    with pytest.raises(AwaitRestart) as caught:
        device.run(op, {"delay_s": 120})
    alarm_at = float(caught.value.details["alarm_at"])
    assert alarm_at == 1_772_355_720.0
    assert paused == [True]
    assert device.power_actions() == ["poweroff"]
    rtc = FakeRtcDir(Path(device.config.paths.rtc_dir), clock=lambda: 1_772_355_600.0)
    assert rtc.read_alarm() == alarm_at

    # The next start: check_commission judges the boot, the runner resumes with its result.
    device.env.boot_check = check_commission(device.config, alarm_at + 40)
    done = asyncio.run(op.resume(device.ctx(op.name), device.notes[-1]))
    assert done["alarm_at"] == f"{alarm_at:.0f}" and "+40 s" in done["result"]

    with pytest.raises(AwaitRestart):
        device.run(op, {"delay_s": 120})
    device.env.boot_check = check_commission(device.config, alarm_at + 3600)
    with pytest.raises(JobFailed, match="switched on by hand"):
        asyncio.run(op.resume(device.ctx(op.name), device.notes[-1]))
    device.env.boot_check = None
    with pytest.raises(JobFailed, match="did not complete"):
        asyncio.run(op.resume(device.ctx(op.name), {}))
    with pytest.raises(JobRejected, match=r"parameters\.delay_s"):
        device.run(op, {"delay_s": 5})


def test_decode_params_names_the_field() -> None:
    class P(msgspec.Struct, forbid_unknown_fields=True):
        n: int = 1

    assert decode_params(P, {"n": 2}).n == 2
    with pytest.raises(JobRejected, match=r"^parameters.n: Expected `int`, got `str`"):
        decode_params(P, {"n": "x"})
    with pytest.raises(JobRejected, match=r"^parameters: .*unknown field `m`"):
        decode_params(P, {"m": 1})
