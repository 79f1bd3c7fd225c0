"""Enrollment: exchange a single-use token for this PC's identity and broker credentials."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import httpx

from .config import EdgeConfig, MqttConfig, PathsConfig, dump_config
from .state import atomic_write


class EnrollError(RuntimeError):
    """Enrollment was refused or the control plane could not be reached; says why."""


@dataclass
class EnrollResult:
    device_id: str
    config_path: Path
    ca_path: Path | None


def enroll(
    url: str,
    token: str,
    config_path: Path,
    *,
    state_dir: str = "/var/lib/difronte",
    force: bool = False,
    transport: httpx.BaseTransport | None = None,
    verify: bool | str = True,
) -> EnrollResult:
    """Call ``POST {url}/api/v1/enroll`` and write the device's configuration (mode 0600)."""
    if config_path.exists() and not force:
        raise EnrollError(f"{config_path} exists: this PC is already enrolled (use --force)")
    try:
        with httpx.Client(base_url=url, timeout=30, transport=transport, verify=verify) as client:
            resp = client.post("/api/v1/enroll", json={"token": token})
    except httpx.HTTPError as exc:
        raise EnrollError(f"cannot reach the control plane at {url}: {exc}") from exc
    if resp.status_code != 200:
        try:
            detail = resp.json().get("detail", resp.text)
        except ValueError:
            detail = resp.text
        raise EnrollError(f"enrollment refused ({resp.status_code}): {detail}")
    body = resp.json()
    ca_path: Path | None = None
    if body.get("tls_ca_pem"):
        ca_path = config_path.parent / "broker-ca.pem"
        atomic_write(ca_path, body["tls_ca_pem"].encode(), mode=0o644)
    config = EdgeConfig(
        device_id=body["device_id"],
        control_plane_url=url,
        mqtt=MqttConfig(
            host=body["mqtt_host"],
            port=body["mqtt_port"],
            password=body["mqtt_password"],
            tls_ca=str(ca_path) if ca_path else None,
        ),
        paths=PathsConfig(state_dir=state_dir),
    )
    config_path.parent.mkdir(parents=True, exist_ok=True)
    # The MQTT password is in there: only root may read it.
    atomic_write(config_path, dump_config(config), mode=0o600)
    os.chmod(config_path, 0o600)
    return EnrollResult(body["device_id"], config_path, ca_path)
