"""Where telemetry series go: by default, nowhere but the batches already stored.

Every accepted batch is a row of ``telemetry_batches`` with its samples, indexed by device;
the fleet feature reads charts from there (``control_plane/fleet/series.py``). Writing each
sample again as one row per metric costs 27 rows per batch for a real PC: at thousands of
batches a second that, not receiving them, was where ingest time went. A time-series server
(InfluxDB line protocol, ``control_plane/fleet/sinks.py: InfluxSink``) is the other sink.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from sqlalchemy.orm import Session

SamplesIn = Sequence[tuple[float, Mapping[str, float]]]


class TelemetrySink(Protocol):
    """Receives each accepted batch's samples, inside the ingest transaction."""

    def write(self, session: Session, device_id: str, samples: SamplesIn) -> None: ...

    def flush(self) -> None: ...


class EmbeddedSink:
    """The embedded SQL store: the series are the accepted batches themselves."""

    def write(self, session: Session, device_id: str, samples: SamplesIn) -> None:
        """Nothing to add: the batch row holds the samples."""

    def write_many(self, session: Session, items: Sequence[tuple[str, SamplesIn]]) -> None:
        """Nothing to add: the batch rows hold the samples."""

    def flush(self) -> None:
        """Nothing buffered."""
