"""Numbers, times and health metrics in plain words, in the reader's language."""

from __future__ import annotations

import datetime as dt
import gettext
import math
import re
from zoneinfo import ZoneInfo

from .i18n import N_

# Metrics with a plain-words label; the unit follows from the name's suffix (see _unit).
_METRIC_LABELS: dict[str, str] = {
    "cpu.percent": N_("Processor in use"),
    "cpu.count": N_("Processors"),
    "cpu.freq_mhz": N_("Processor speed"),
    "load.1": N_("Load, last minute"),
    "load.5": N_("Load, last 5 minutes"),
    "load.15": N_("Load, last 15 minutes"),
    "mem.used_pct": N_("Memory in use"),
    "mem.total_bytes": N_("Memory"),
    "mem.available_bytes": N_("Memory available"),
    "swap.used_pct": N_("Swap in use"),
    "swap.total_bytes": N_("Swap"),
    "battery.pct": N_("Battery charge"),
    "battery.plugged": N_("Plugged in"),
    "battery.secs_left": N_("Battery time left"),
    "temp.max_c": N_("Highest temperature"),
    "smart.disks": N_("Disks checked"),
    "smart.ok": N_("Disks healthy"),
    "smart.failing_disks": N_("Failing disks"),
    "smart.unreadable_disks": N_("Disks that could not be read"),
    "smart.max_temp_c": N_("Hottest disk"),
    "rtc.drift_s": N_("Clock drift"),
    "ntp.synced": N_("Clock synchronised"),
    "outbox.depth": N_("Messages waiting to be sent"),
    "uptime_s": N_("Switched on for"),
    "net.link_up": N_("Network connected"),
    "net.links_up": N_("Network links up"),
    "net.rx_bytes": N_("Data received"),
    "net.tx_bytes": N_("Data sent"),
}
_BOOLEAN_METRICS = frozenset({"battery.plugged", "smart.ok", "ntp.synced", "net.link_up"})
_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^disk\.(?P<name>.+)\.used_pct$"), N_("Disk space used (%(name)s)")),
    (re.compile(r"^disk\.(?P<name>.+)\.free_bytes$"), N_("Disk space free (%(name)s)")),
    (re.compile(r"^disk\.(?P<name>.+)\.total_bytes$"), N_("Disk size (%(name)s)")),
    (re.compile(r"^temp\.(?P<name>.+)\.max_c$"), N_("Temperature (%(name)s)")),
]
_BYTE_UNITS = ("B", "KB", "MB", "GB", "TB", "PB")


class Formatter:
    """Formats values for one reader: their language, their time zone, one fixed "now"."""

    def __init__(
        self,
        translations: gettext.NullTranslations,
        lang: str,
        *,
        now: dt.datetime,
        tz: ZoneInfo,
    ) -> None:
        self._t = translations
        self.lang = lang
        self.now = now
        self.tz = tz

    def _(self, msgid: str, **params: object) -> str:
        text = self._t.gettext(msgid)
        return text % params if params else text

    def number(self, value: float, decimals: int = 0) -> str:
        """``1234.5`` as ``1.234,5`` in Italian and ``1,234.5`` in English."""
        text = f"{value:,.{decimals}f}"
        if self.lang == "it":
            text = text.replace(",", "\0").replace(".", ",").replace("\0", ".")
        return text

    def size(self, count: float) -> str:
        """A byte count in the largest sensible unit (decimal, as disks are sold)."""
        value = float(count)
        unit = 0
        while abs(value) >= 1000 and unit < len(_BYTE_UNITS) - 1:
            value /= 1000
            unit += 1
        decimals = 0 if unit == 0 or abs(value) >= 100 else 1
        return f"{self.number(value, decimals)} {_BYTE_UNITS[unit]}"

    def duration(self, seconds: float) -> str:
        """A length of time in its largest whole unit: "3 days", "5 hours", "40 seconds"."""
        s = abs(seconds)
        if s >= 2 * 86400:
            n = int(s // 86400)
            return self._t.ngettext("%(num)d day", "%(num)d days", n) % {"num": n}
        if s >= 2 * 3600:
            n = int(s // 3600)
            return self._t.ngettext("%(num)d hour", "%(num)d hours", n) % {"num": n}
        if s >= 120:
            n = int(s // 60)
            return self._t.ngettext("%(num)d minute", "%(num)d minutes", n) % {"num": n}
        n = round(s)
        return self._t.ngettext("%(num)d second", "%(num)d seconds", n) % {"num": n}

    def ago(self, when: dt.datetime | None) -> str:
        """How long ago, in words: "adesso", "3 minuti fa", "ieri"; "mai" when never."""
        if when is None:
            return self._("never")
        seconds = (self.now - when).total_seconds()
        # A device clock slightly ahead of ours would give "in 2 seconds"; that is "now".
        if seconds < 45:
            return self._("just now")
        minutes = round(seconds / 60)
        if minutes < 60:
            return self._t.ngettext("%(num)d minute ago", "%(num)d minutes ago", minutes) % {
                "num": minutes
            }
        hours = round(seconds / 3600)
        if hours < 24:
            return self._t.ngettext("%(num)d hour ago", "%(num)d hours ago", hours) % {"num": hours}
        days = round(seconds / 86400)
        if days == 1:
            return self._("yesterday")
        return self._t.ngettext("%(num)d day ago", "%(num)d days ago", days) % {"num": days}

    def datetime(self, when: dt.datetime | None) -> str:
        """A moment in the reader's time zone, day first: "12/03/2025 14:05"."""
        if when is None:
            return self._("never")
        local = when.astimezone(self.tz)
        if self.lang == "it":
            return local.strftime("%d/%m/%Y %H:%M")
        return local.strftime("%Y-%m-%d %H:%M")

    def iso(self, when: dt.datetime | None) -> str:
        """The machine-readable form for ``<time datetime>``."""
        return "" if when is None else when.astimezone(dt.UTC).isoformat(timespec="seconds")

    def metric_label(self, key: str) -> str:
        """A plain-words name for a telemetry metric (the raw key when unknown)."""
        msgid = _METRIC_LABELS.get(key)
        if msgid is not None:
            return self._(msgid)
        for pattern, template in _PATTERNS:
            match = pattern.match(key)
            if match:
                return self._(template, name=match.group("name"))
        return key

    def metric_value(self, key: str, value: float) -> str:
        """A metric's value with its unit: "42 %", "1,5 GB", "38 °C", "3 days"."""
        if not math.isfinite(value):
            return "—"
        if key in _BOOLEAN_METRICS:
            return self._("yes") if value else self._("no")
        if key.endswith("_bytes"):
            return self.size(value)
        if key.endswith(("_pct", ".pct", ".percent")):
            return f"{self.number(value, 0)} %"
        if key.endswith("_c"):
            return f"{self.number(value, 0)} °C"
        if key.endswith("_mhz"):
            return f"{self.number(value, 0)} MHz"
        if key == "rtc.drift_s":
            return f"{self.number(value, 1)} s"
        if key.endswith(("_s", ".secs_left")):
            return self.duration(value)
        return self.number(value, 0 if float(value).is_integer() else 2)
