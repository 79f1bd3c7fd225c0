"""Where telemetry series go: the embedded SQL table by default."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Protocol

from sqlalchemy.orm import Session

from .models import TelemetryPoint


class TelemetrySink(Protocol):
    """Receives each accepted batch's samples, inside the ingest transaction."""

    def write(
        self, session: Session, device_id: str, samples: Sequence[tuple[float, Mapping[str, float]]]
    ) -> None: ...

    def flush(self) -> None: ...


class SqlSink:
    """The embedded time-series store: rows in ``telemetry_points``."""

    def write(
        self, session: Session, device_id: str, samples: Sequence[tuple[float, Mapping[str, float]]]
    ) -> None:
        """Add one row per sample and metric."""
        session.add_all(
            TelemetryPoint(
                device_id=device_id,
                name=name,
                ts=dt.datetime.fromtimestamp(ts, dt.UTC),
                value=float(value),
            )
            for ts, metrics in samples
            for name, value in metrics.items()
        )

    def flush(self) -> None:
        """Nothing buffered: rows commit with the transaction."""
