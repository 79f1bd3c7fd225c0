"""The image and Ansible files technicians use are well-formed and do what they say."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FILES = ROOT / "images" / "files"


@pytest.mark.skipif(shutil.which("ansible-playbook") is None, reason="ansible-core not installed")
def test_playbooks_pass_syntax_check() -> None:
    r = subprocess.run(
        [
            "ansible-playbook",
            "-i",
            "localhost,",
            "--syntax-check",
            "playbooks/edge.yml",
            "playbooks/control-plane.yml",
        ],
        cwd=ROOT / "ansible",
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible" / "ansible.cfg")},
    )
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("unit", ["difronte-edge.service", "difronte-firstboot.service"])
def test_units_parse_and_point_at_real_commands(unit: str) -> None:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(FILES / unit)
    assert {"Unit", "Service", "Install"} <= set(parser.sections())
    exec_start = parser["Service"]["ExecStart"]
    if unit == "difronte-edge.service":
        assert exec_start.endswith("difronte-edge run --config /etc/difronte/edge.toml")
    else:
        assert exec_start == "/usr/local/sbin/difronte-firstboot"


def _firstboot(tmp_path: Path, search: str) -> subprocess.CompletedProcess[str]:
    calls = tmp_path / "calls.log"
    fake_edge = tmp_path / "difronte-edge"
    fake_edge.write_text(
        "#!/bin/sh\n"
        f'echo "edge $*" >> {calls}\n'
        # Like the real enroll: write the config named by --config.
        'while [ $# -gt 0 ]; do [ "$1" = --config ] && touch "$2"; shift; done\n'
    )
    fake_edge.chmod(0o755)
    fake_systemctl = tmp_path / "systemctl"
    fake_systemctl.write_text(f'#!/bin/sh\necho "systemctl $*" >> {calls}\n')
    fake_systemctl.chmod(0o755)
    env = {
        **os.environ,
        "DIFRONTE_CONFIG": str(tmp_path / "edge.toml"),
        "DIFRONTE_EDGE": str(fake_edge),
        "DIFRONTE_SYSTEMCTL": str(fake_systemctl),
        "DIFRONTE_ENROLL_SEARCH": search,
    }
    return subprocess.run(
        [str(FILES / "difronte-firstboot")], env=env, capture_output=True, text=True, timeout=30
    )


def test_firstboot_enrolls_once_and_removes_the_token(tmp_path: Path) -> None:
    enroll = tmp_path / "usb" / "difronte-enroll.txt"
    enroll.parent.mkdir()
    enroll.write_text("url=https://cp.example.org\ntoken=tok-123456789\n")
    r = _firstboot(tmp_path, f"{tmp_path}/boot/difronte-enroll.txt {enroll}")
    assert r.returncode == 0, r.stderr
    calls = (tmp_path / "calls.log").read_text().splitlines()
    assert calls[0] == (
        f"edge enroll --url https://cp.example.org --token tok-123456789 "
        f"--config {tmp_path / 'edge.toml'}"
    )
    assert calls[1] == "systemctl enable --now difronte-edge.service"
    assert not enroll.exists()  # the spent token is not left on the stick
    again = _firstboot(tmp_path, str(enroll))
    assert again.returncode == 0 and "already enrolled" in again.stdout
    assert len((tmp_path / "calls.log").read_text().splitlines()) == 2


def test_firstboot_explains_what_is_missing(tmp_path: Path) -> None:
    r = _firstboot(tmp_path, f"{tmp_path}/nowhere.txt")
    assert r.returncode == 1 and "no difronte-enroll.txt found" in r.stderr
    bad = tmp_path / "difronte-enroll.txt"
    bad.write_text("url=https://cp.example.org\n")
    r = _firstboot(tmp_path, str(bad))
    assert r.returncode == 1 and "token= line" in r.stderr
