"""Recorded ``smartctl -j`` outputs (smartmontools 7.3 structure) for the SMART tests."""

from __future__ import annotations

import json
from typing import Any


def _smartctl(
    argv: list[str], exit_status: int, messages: list[dict[str, str]] | None = None
) -> dict[str, Any]:
    block: dict[str, Any] = {
        "version": [7, 3],
        "svn_revision": "5338",
        "platform_info": "x86_64-linux-6.1.0-18-amd64",
        "build_info": "(local build)",
        "argv": argv,
        "exit_status": exit_status,
    }
    if messages:
        block["messages"] = messages
    return block


def _attr(
    attr_id: int,
    name: str,
    value: int,
    worst: int,
    thresh: int,
    raw: int,
    raw_string: str | None = None,
) -> dict[str, Any]:
    return {
        "id": attr_id,
        "name": name,
        "value": value,
        "worst": worst,
        "thresh": thresh,
        "when_failed": "",
        "flags": {
            "value": 51,
            "string": "POS--K ",
            "prefailure": True,
            "updated_online": True,
            "performance": True,
            "error_rate": False,
            "event_count": False,
            "auto_keep": True,
        },
        "raw": {"value": raw, "string": raw_string if raw_string is not None else str(raw)},
    }


SCAN = json.dumps(
    {
        "json_format_version": [1, 0],
        "smartctl": _smartctl(["smartctl", "--scan", "-j"], 0),
        "devices": [
            {"name": "/dev/sda", "info_name": "/dev/sda [SAT]", "type": "sat", "protocol": "ATA"},
            {"name": "/dev/nvme0", "info_name": "/dev/nvme0", "type": "nvme", "protocol": "NVMe"},
        ],
    }
)

ATA_HEALTHY = json.dumps(
    {
        "json_format_version": [1, 0],
        "smartctl": _smartctl(["smartctl", "-j", "-H", "-A", "-i", "/dev/sda"], 0),
        "local_time": {"time_t": 1709290000, "asctime": "Fri Mar  1 10:46:40 2024 CET"},
        "device": {
            "name": "/dev/sda",
            "info_name": "/dev/sda [SAT]",
            "type": "sat",
            "protocol": "ATA",
        },
        "model_family": "Western Digital Blue",
        "model_name": "WDC WD5000AAKX-60U6AA0",
        "serial_number": "WD-WCC2EUP12345",
        "firmware_version": "18.01H18",
        "user_capacity": {"blocks": 976773168, "bytes": 500107862016},
        "logical_block_size": 512,
        "rotation_rate": 7200,
        "in_smartctl_database": True,
        "smart_support": {"available": True, "enabled": True},
        "smart_status": {"passed": True},
        "ata_smart_attributes": {
            "revision": 16,
            "table": [
                _attr(1, "Raw_Read_Error_Rate", 200, 200, 51, 0),
                _attr(5, "Reallocated_Sector_Ct", 200, 200, 140, 0),
                _attr(9, "Power_On_Hours", 84, 84, 0, 12345),
                _attr(12, "Power_Cycle_Count", 98, 98, 0, 2345),
                _attr(194, "Temperature_Celsius", 112, 97, 0, 35),
                _attr(197, "Current_Pending_Sector", 200, 200, 0, 0),
            ],
        },
        "power_on_time": {"hours": 12345},
        "power_cycle_count": 2345,
        "temperature": {"current": 35},
    }
)

# A dying disk: FAILED verdict, remapped and pending sectors, and only the packed raw
# temperature attribute (no top-level "temperature"), as some old Seagates report.
ATA_FAILING = json.dumps(
    {
        "json_format_version": [1, 0],
        "smartctl": _smartctl(
            ["smartctl", "-j", "-H", "-A", "-i", "/dev/sda"],
            8 | 16 | 64,
            [
                {
                    "string": "SMART overall-health self-assessment test result: FAILED!",
                    "severity": "error",
                }
            ],
        ),
        "device": {
            "name": "/dev/sda",
            "info_name": "/dev/sda [SAT]",
            "type": "sat",
            "protocol": "ATA",
        },
        "model_name": "ST3250318AS",
        "serial_number": "9VY12345",
        "smart_support": {"available": True, "enabled": True},
        "smart_status": {"passed": False},
        "ata_smart_attributes": {
            "revision": 10,
            "table": [
                _attr(5, "Reallocated_Sector_Ct", 3, 3, 36, 1234),
                _attr(9, "Power_On_Hours", 1, 1, 0, 61234),
                _attr(
                    194,
                    "Temperature_Celsius",
                    42,
                    55,
                    0,
                    42 | (20 << 16) | (45 << 32),
                    "42 (Min/Max 20/45)",
                ),
                _attr(197, "Current_Pending_Sector", 1, 1, 0, 56),
            ],
        },
    }
)

NVME = json.dumps(
    {
        "json_format_version": [1, 0],
        "smartctl": _smartctl(["smartctl", "-j", "-H", "-A", "-i", "/dev/nvme0"], 0),
        "device": {
            "name": "/dev/nvme0",
            "info_name": "/dev/nvme0",
            "type": "nvme",
            "protocol": "NVMe",
        },
        "model_name": "Samsung SSD 970 EVO Plus 500GB",
        "serial_number": "S4EVNX0N123456A",
        "firmware_version": "2B2QEXM7",
        "smart_support": {"available": True, "enabled": True},
        "smart_status": {"passed": True, "nvme": {"value": 0}},
        "nvme_smart_health_information_log": {
            "critical_warning": 0,
            "temperature": 41,
            "available_spare": 100,
            "available_spare_threshold": 10,
            "percentage_used": 3,
            "power_cycles": 812,
            "power_on_hours": 6021,
            "unsafe_shutdowns": 95,
            "media_errors": 0,
            "num_err_log_entries": 0,
        },
        "temperature": {"current": 41},
        "power_cycle_count": 812,
        "power_on_time": {"hours": 6021},
    }
)

USB_UNKNOWN_BRIDGE = json.dumps(
    {
        "json_format_version": [1, 0],
        "smartctl": _smartctl(
            ["smartctl", "-j", "-H", "-A", "-i", "/dev/sdb"],
            1,
            [
                {
                    "string": "/dev/sdb: Unknown USB bridge [0x152d:0x0578 (0x214)]",
                    "severity": "error",
                },
                {"string": "Please specify device type with the -d option.", "severity": "error"},
            ],
        ),
    }
)

STANDBY = json.dumps(
    {
        "json_format_version": [1, 0],
        "smartctl": _smartctl(
            ["smartctl", "-j", "-H", "-A", "-i", "-d", "sat", "-n", "standby", "/dev/sda"],
            2,
            [{"string": "Device is in STANDBY mode, exit(2)", "severity": "information"}],
        ),
        "device": {
            "name": "/dev/sda",
            "info_name": "/dev/sda [SAT]",
            "type": "sat",
            "protocol": "ATA",
        },
    }
)

NO_SMART = json.dumps(
    {
        "json_format_version": [1, 0],
        "smartctl": _smartctl(
            ["smartctl", "-j", "-H", "-A", "-i", "/dev/sdc"],
            4,
            [
                {
                    "string": "SMART support is: Unavailable - device lacks SMART capability.",
                    "severity": "warning",
                }
            ],
        ),
        "device": {"name": "/dev/sdc", "info_name": "/dev/sdc", "type": "scsi", "protocol": "SCSI"},
        "scsi_model_name": "QEMU HARDDISK",
        "smart_support": {"available": False},
    }
)
