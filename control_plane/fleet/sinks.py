"""Where telemetry series go: the embedded SQL store (default), or InfluxDB.

``EmbeddedSink`` (from ``control_plane/sinks.py``) keeps the series in the database the
control plane already writes: the accepted batches with their samples.

``InfluxSink`` writes InfluxDB line protocol through influxdb-client: InfluxDB 2/3 and
VictoriaMetrics (``/api/v2/write``). Points of stored batches are buffered during the ingest
transaction and written after it commits, in one request, retried with backoff; what still
fails is kept (bounded) and sent with the next batch.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI
from influxdb_client import InfluxDBClient, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS
from sqlalchemy.orm import Session

from ..config import Settings
from ..sinks import EmbeddedSink, SamplesIn

log = logging.getLogger(__name__)

MEASUREMENT = "device_health"
_MAX_BUFFERED = 200_000

__all__ = ["MEASUREMENT", "EmbeddedSink", "InfluxSink", "SamplesIn", "to_lines"]


def _escape_tag(value: str) -> str:
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def to_lines(device_id: str, samples: Sequence[tuple[float, Mapping[str, float]]]) -> list[str]:
    """One line per sample: ``device_health,device=<id> cpu.percent=3.5,... <ns>``."""
    lines = []
    tag = _escape_tag(device_id)
    for ts, metrics in samples:
        if not metrics:
            continue
        fields = ",".join(f"{_escape_tag(k)}={float(v)!r}" for k, v in sorted(metrics.items()))
        lines.append(f"{MEASUREMENT},device={tag} {fields} {int(ts * 1e9)}")
    return lines


class InfluxSink:
    """A ``TelemetrySink`` writing line protocol to InfluxDB/VictoriaMetrics."""

    def __init__(
        self,
        url: str,
        token: str,
        org: str,
        bucket: str,
        *,
        retries: int = 3,
        backoff_s: float = 0.5,
        timeout_ms: int = 10_000,
    ) -> None:
        self.bucket, self.org = bucket, org
        self.retries, self.backoff_s = retries, backoff_s
        self._client = InfluxDBClient(url=url, token=token, org=org, timeout=timeout_ms)
        self._write = self._client.write_api(write_options=SYNCHRONOUS)
        self._pending: list[str] = []
        self._lock = threading.Lock()
        self.written = 0
        self.failures = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> InfluxSink:
        """Build from the control plane's settings."""
        return cls(
            settings.influx_url,
            settings.influx_token,
            settings.influx_org,
            settings.influx_bucket,
            retries=settings.influx_retries,
        )

    def write(
        self, session: Session, device_id: str, samples: Sequence[tuple[float, Mapping[str, float]]]
    ) -> None:
        """Buffer the batch's points; they are sent by :meth:`flush` after the commit."""
        lines = to_lines(device_id, samples)
        with self._lock:
            self._pending.extend(lines)
            if len(self._pending) > _MAX_BUFFERED:  # the store is down for long: keep newest
                dropped = len(self._pending) - _MAX_BUFFERED
                del self._pending[:dropped]
                log.error("time-series store unreachable: %d points dropped", dropped)

    def flush(self) -> None:
        """Send what is buffered, retrying; on failure keep it for the next flush."""
        with self._lock:
            lines, self._pending = self._pending, []
        if not lines:
            return
        for attempt in range(self.retries + 1):
            try:
                self._write.write(
                    bucket=self.bucket,
                    org=self.org,
                    record=lines,
                    write_precision=WritePrecision.NS,  # type: ignore[arg-type]
                )
                self.written += len(lines)
                return
            except Exception as exc:
                self.failures += 1
                if attempt == self.retries:
                    log.warning(
                        "writing %d points failed (%s); kept for the next batch", len(lines), exc
                    )
                    with self._lock:
                        self._pending[:0] = lines
                    return
                time.sleep(self.backoff_s * 2**attempt)

    def close(self) -> None:
        """Flush and close the client."""
        self.flush()
        self._write.close()
        self._client.close()

    async def aclose(self, _app: FastAPI | Any = None) -> None:
        self.close()
