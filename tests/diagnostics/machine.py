"""A fake donated laptop (a ThinkPad T430) for the diagnostics tests: recorded tool outputs
and sysfs/procfs/dev/etc trees laid out as the kernel lays them out."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.collectors.runner import Runner
from edge.diagnostics import build_report
from tests.collectors.collector_fakes import FakeRunner, result
from tests.collectors.smart_samples import ATA_HEALTHY, USB_UNKNOWN_BRIDGE

DMIDECODE_ARGV = ("dmidecode", "-t", "system", "-t", "baseboard", "-t", "bios", "-t", "memory")
LSBLK_ARGV = ("lsblk", "-J", "-b", "-o", "NAME,MODEL,SERIAL,SIZE,ROTA,TYPE,TRAN,RM")
SMART_SDA = ("smartctl", "-j", "-H", "-A", "-i", "/dev/sda")
SMART_SDB = ("smartctl", "-j", "-H", "-A", "-i", "/dev/sdb")

DMIDECODE_T430 = """\
# dmidecode 3.4
Getting SMBIOS data from sysfs.
SMBIOS 2.7 present.

Handle 0x000D, DMI type 0, 24 bytes
BIOS Information
\tVendor: LENOVO
\tVersion: G1ETB2WW (2.72 )
\tRelease Date: 02/25/2019
\tAddress: 0xE0000
\tRuntime Size: 128 kB
\tROM Size: 12 MB
\tCharacteristics:
\t\tPCI is supported
\t\tPNP is supported
\t\tBIOS is upgradeable
\t\tACPI is supported
\t\tUEFI is supported
\tBIOS Revision: 2.72
\tFirmware Revision: 1.15

Handle 0x000E, DMI type 1, 27 bytes
System Information
\tManufacturer: LENOVO
\tProduct Name: 2349KV5
\tVersion: ThinkPad T430
\tSerial Number: R9ABCDE
\tUUID: 4C4C4544-0042-3510-8052-B4C04F4B4D31
\tWake-up Type: Power Switch
\tSKU Number: LENOVO_MT_2349
\tFamily: ThinkPad T430

Handle 0x000F, DMI type 2, 15 bytes
Base Board Information
\tManufacturer: LENOVO
\tProduct Name: 2349KV5
\tVersion: Not Defined
\tSerial Number: 1ZJ8K27G0AB
\tAsset Tag: Not Available
\tFeatures:
\t\tBoard is a hosting board
\t\tBoard is replaceable
\tLocation In Chassis: Not Available
\tChassis Handle: 0x0000
\tType: Motherboard
\tContained Object Handles: 0

Handle 0x0005, DMI type 16, 23 bytes
Physical Memory Array
\tLocation: System Board Or Motherboard
\tUse: System Memory
\tError Correction Type: None
\tMaximum Capacity: 16 GB
\tError Information Handle: Not Provided
\tNumber Of Devices: 2

Handle 0x0006, DMI type 17, 34 bytes
Memory Device
\tArray Handle: 0x0005
\tError Information Handle: Not Provided
\tTotal Width: 64 bits
\tData Width: 64 bits
\tSize: 2048 MB
\tForm Factor: SODIMM
\tSet: None
\tLocator: ChannelA-DIMM0
\tBank Locator: BANK 0
\tType: DDR3
\tType Detail: Synchronous
\tSpeed: 1600 MT/s
\tManufacturer: Samsung
\tSerial Number: 1234ABCD
\tAsset Tag: None
\tPart Number: M471B5773DH0-CK0
\tRank: 1
\tConfigured Memory Speed: 1600 MT/s

Handle 0x0007, DMI type 17, 34 bytes
Memory Device
\tArray Handle: 0x0005
\tError Information Handle: Not Provided
\tTotal Width: 64 bits
\tData Width: 64 bits
\tSize: 2048 MB
\tForm Factor: SODIMM
\tSet: None
\tLocator: ChannelB-DIMM0
\tBank Locator: BANK 2
\tType: DDR3
\tType Detail: Synchronous
\tSpeed: 1600 MT/s
\tManufacturer: Hynix/Hyundai
\tSerial Number: 5678EF01
\tAsset Tag: None
\tPart Number: HMT325S6CFR8C-PB
\tRank: 1
\tConfigured Memory Speed: 1600 MT/s

"""

LSBLK_T430 = json.dumps(
    {
        "blockdevices": [
            {"name": "sda", "model": "WDC WD5000AAKX-60U6AA0", "serial": "WD-WCC2EUP12345",
             "size": 500107862016, "rota": True, "type": "disk", "tran": "sata", "rm": False},
            {"name": "sdb", "model": "USB3.0 Disk", "serial": None, "size": 15502147584,
             "rota": False, "type": "disk", "tran": "usb", "rm": True},
            {"name": "sr0", "model": "DVD-RAM UJ8C0", "serial": "KZ5B2340789", "size": 1073741312,
             "rota": True, "type": "rom", "tran": "sata", "rm": True},
            {"name": "zram0", "model": None, "serial": None, "size": 4105175040, "rota": False,
             "type": "disk", "tran": None, "rm": False},
        ]
    }
)  # fmt: skip

CPUINFO_T430 = "".join(
    f"""processor\t: {n}
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 58
model name\t: Intel(R) Core(TM) i5-3320M CPU @ 2.60GHz
stepping\t: 9
cpu MHz\t\t: 1197.250
cache size\t: 3072 KB
physical id\t: 0
siblings\t: 4
core id\t\t: {n // 2}
cpu cores\t: 2
flags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush \
dts acpi mmx fxsr sse sse2 ss ht tm pbe syscall nx rdtscp lm constant_tsc arch_perfmon
bogomips\t: 5188.32

"""
    for n in range(4)
)

MEMINFO_T430 = """\
MemTotal:        3863892 kB
MemFree:         2210432 kB
MemAvailable:    2981120 kB
Buffers:           81232 kB
"""

ASOUND_CARDS = """\
 0 [PCH            ]: HDA-Intel - HDA Intel PCH
                      HDA Intel PCH at 0xf2530000 irq 30
"""

ASOUND_PCM = """\
00-00: CONEXANT Analog : CONEXANT Analog : playback 1 : capture 1
00-03: HDMI 0 : HDMI 0 : playback 1
"""

PROC_RTC = """\
rtc_time\t: 10:22:33
rtc_date\t: 2024-03-01
alrm_time\t: 00:00:00
alrm_date\t: 2024-03-02
alarm_IRQ\t: no
alrm_pending\t: no
update IRQ enabled\t: no
periodic IRQ enabled\t: no
periodic IRQ frequency\t: 1024
max user IRQ frequency\t: 64
24hr\t\t: yes
periodic_IRQ\t: no
update_IRQ\t: no
HPET_emulated\t: yes
BCD\t\t: yes
DST_enable\t: no
periodic_freq\t: 1024
batt_status\t: okay
"""

DMESG = """\
[    0.000000] Linux version 6.1.0-18-amd64 (debian-kernel@lists.debian.org)
[    0.612345] rtc_cmos 00:02: RTC can wake from S4
[    0.613001] rtc_cmos 00:02: registered as rtc0
[    0.613456] rtc_cmos 00:02: alarms up to one month, y3k, 114 bytes nvram, hpet irqs
"""


@dataclass
class Machine:
    """Roots of a fake machine and the runner answering for its tools."""

    root: Path
    sysfs: Path
    proc: Path
    dev: Path
    etc: Path
    runner: FakeRunner = field(default_factory=FakeRunner)

    def report(
        self,
        *,
        run: Runner | None = None,
        clock: float = 1_709_288_553.0,
        test_devices: bool = False,
    ) -> dict[str, Any]:
        """build_report on this machine (its runner unless another is given)."""
        return build_report(
            run=run or self.runner,
            sysfs=self.sysfs,
            proc=self.proc,
            dev=self.dev,
            etc=self.etc,
            clock=lambda: clock,
            test_devices=test_devices,
        )


def write(path: Path, text: str | bytes) -> Path:
    """Create a file (and its parents)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def _nic(m: Machine, name: str, *, mac: str, driver: str | None, operstate: str,
         speed: str | None, wireless: bool = False) -> None:  # fmt: skip
    nic = m.sysfs / "class" / "net" / name
    write(nic / "address", f"{mac}\n")
    write(nic / "operstate", f"{operstate}\n")
    if speed is not None:
        write(nic / "speed", f"{speed}\n")
    if driver is not None:
        drv = m.sysfs / "bus" / "pci" / "drivers" / driver
        drv.mkdir(parents=True, exist_ok=True)
        (nic / "device").mkdir()
        (nic / "device" / "driver").symlink_to(drv)
    if wireless:
        (nic / "wireless").mkdir()


def _supply(m: Machine, name: str, attrs: dict[str, str]) -> None:
    for key, value in attrs.items():
        write(m.sysfs / "class" / "power_supply" / name / key, f"{value}\n")


def t430(root: Path) -> Machine:
    """The whole laptop: every tool installed, every file where the kernel puts it."""
    m = Machine(root, root / "sys", root / "proc", root / "dev", root / "etc")
    for d in (m.sysfs, m.proc, m.dev, m.etc):
        d.mkdir(parents=True)
    m.runner.answers.update(
        {
            DMIDECODE_ARGV: result(DMIDECODE_ARGV, DMIDECODE_T430),
            LSBLK_ARGV: result(LSBLK_ARGV, LSBLK_T430),
            SMART_SDA: result(SMART_SDA, ATA_HEALTHY),
            SMART_SDB: result(SMART_SDB, USB_UNKNOWN_BRIDGE, returncode=1),
            ("dmesg",): result(("dmesg",), DMESG),
        }
    )
    dmi = m.sysfs / "class" / "dmi" / "id"
    for attr, value in {
        "sys_vendor": "LENOVO",
        "product_name": "2349KV5",
        "product_version": "ThinkPad T430",
        "product_serial": "R9ABCDE",
        "product_uuid": "4C4C4544-0042-3510-8052-B4C04F4B4D31",
        "product_family": "ThinkPad T430",
        "board_vendor": "LENOVO",
        "board_name": "2349KV5",
        "board_version": "Not Defined",
        "board_serial": "1ZJ8K27G0AB",
        "bios_vendor": "LENOVO",
        "bios_version": "G1ETB2WW (2.72 )",
        "bios_date": "02/25/2019",
    }.items():
        write(dmi / attr, f"{value}\n")
    write(m.sysfs / "devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq", "3300000\n")
    for name, sectors, rota, model in (("sda", 976773168, "1", "WDC WD5000AAKX-60U6AA0"),
                                       ("zram0", 8017920, "0", None)):  # fmt: skip
        block = m.sysfs / "block" / name
        write(block / "size", f"{sectors}\n")
        write(block / "queue" / "rotational", f"{rota}\n")
        write(block / "removable", "0\n")
        if model:
            write(block / "device" / "model", f"{model}\n")
    _nic(m, "lo", mac="00:00:00:00:00:00", driver=None, operstate="unknown", speed=None)
    _nic(m, "enp0s25", mac="3c:97:0e:12:34:56", driver="e1000e", operstate="up", speed="1000")
    _nic(m, "wlp3s0", mac="a0:88:b4:65:43:21", driver="iwlwifi", operstate="down", speed=None,
         wireless=True)  # fmt: skip
    _nic(m, "wg0", mac="", driver=None, operstate="unknown", speed=None)
    _supply(m, "AC", {"type": "Mains", "online": "1"})
    _supply(
        m,
        "BAT0",
        {
            "type": "Battery",
            "scope": "System",
            "energy_full_design": "56160000",
            "energy_full": "41200000",
            "capacity": "87",
            "status": "Discharging",
            "cycle_count": "412",
            "technology": "Li-ion",
            "manufacturer": "SANYO",
            "model_name": "45N1001",
        },
    )
    _supply(m, "hidpp_battery_0", {"type": "Battery", "scope": "Device", "capacity": "40"})
    for node, index in (("video0", 0), ("video1", 1)):
        write(
            m.sysfs / "class" / "video4linux" / node / "name", "Integrated Camera: Integrated C\n"
        )
        write(m.sysfs / "class" / "video4linux" / node / "index", f"{index}\n")
        write(m.dev / node, "")
    rtc = m.sysfs / "class" / "rtc" / "rtc0"
    write(rtc / "name", "rtc_cmos\n")
    write(rtc / "wakealarm", "\n")
    write(rtc / "since_epoch", "1709288553\n")
    write(rtc / "device" / "power" / "wakeup", "enabled\n")
    write(m.proc / "cpuinfo", CPUINFO_T430)
    write(m.proc / "meminfo", MEMINFO_T430)
    write(m.proc / "asound" / "cards", ASOUND_CARDS)
    write(m.proc / "asound" / "pcm", ASOUND_PCM)
    write(m.proc / "driver" / "rtc", PROC_RTC)
    write(m.etc / "adjtime", "0.000000 1709288553 0.000000\n1709288553\nUTC\n")
    return m
