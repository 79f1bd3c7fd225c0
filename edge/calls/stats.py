"""Call quality figures from an aiortc stats report: RTT, loss, bitrates, resolution."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class StatsTracker:
    """Turns cumulative byte counters into bitrates between two reports."""

    _last: dict[str, tuple[float, int]] = field(default_factory=dict)

    def rate_kbps(self, key: str, now: float, total_bytes: int) -> float:
        """kbit/s of ``key`` since the previous call (0 the first time)."""
        previous = self._last.get(key)
        self._last[key] = (now, total_bytes)
        if previous is None or now <= previous[0]:
            return 0.0
        return max(0.0, (total_bytes - previous[1]) * 8 / 1000 / (now - previous[0]))

    def summarise(self, report: Iterable[Any], now: float) -> dict[str, float]:
        """The figures the control plane stores with the call record."""
        out: dict[str, float] = {}
        rtts: list[float] = []
        for s in report:
            kind = getattr(s, "kind", "")
            stype = getattr(s, "type", "")
            if stype == "inbound-rtp":
                out[f"{kind}_packets_in"] = float(s.packetsReceived)
                out[f"{kind}_packets_lost_in"] = float(max(0, s.packetsLost))
                # aiortc counts jitter in RTP clock ticks: 90 kHz video, 48 kHz audio.
                ticks_per_ms = 90.0 if kind == "video" else 48.0
                out[f"{kind}_jitter_ms"] = round(float(s.jitter) / ticks_per_ms, 2)
            elif stype == "remote-outbound-rtp":
                # What the caller says it sent (RTCP sender reports): the inbound rate per kind.
                out[f"{kind}_kbps_in"] = round(self.rate_kbps(f"in-{kind}", now, s.bytesSent), 1)
            elif stype == "outbound-rtp":
                out[f"{kind}_packets_out"] = float(s.packetsSent)
                out[f"{kind}_kbps_out"] = round(self.rate_kbps(f"out-{kind}", now, s.bytesSent), 1)
            elif stype == "remote-inbound-rtp":
                if s.roundTripTime is not None:
                    rtts.append(float(s.roundTripTime) * 1000)
                out[f"{kind}_loss_out_pct"] = round(float(s.fractionLost) * 100, 2)
            elif stype == "transport":
                out["bytes_in"] = float(s.bytesReceived)
                out["bytes_out"] = float(s.bytesSent)
                out["kbps_in"] = round(self.rate_kbps("in", now, s.bytesReceived), 1)
                out["kbps_out"] = round(self.rate_kbps("out", now, s.bytesSent), 1)
        if rtts:
            out["rtt_ms"] = round(max(rtts), 1)
        received = out.get("video_packets_in", 0) + out.get("audio_packets_in", 0)
        lost = out.get("video_packets_lost_in", 0) + out.get("audio_packets_lost_in", 0)
        if received + lost > 0:
            out["loss_in_pct"] = round(100 * lost / (received + lost), 2)
        return out
