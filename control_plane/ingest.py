"""What the control plane does with each message a device sends.

Pure of MQTT: :class:`Ingest` takes (topic, payload) pairs and stores them in one transaction.
Every payload is validated by the contract; a bad one is refused with the field named, counted on
its device and kept in ``ingest_errors`` — it never stops the loop and never touches stored data.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from edge import protocol as p

from .db import utcnow
from .models import Device, DeviceEvent, IngestError, TelemetryBatchRecord
from .sinks import SqlSink, TelemetrySink

log = logging.getLogger(__name__)

Handler = Callable[[Session, Device, p.ParsedTopic, Any, dt.datetime], None]


def _ts(epoch: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, dt.UTC)


@dataclass
class IngestStats:
    """Counters for operators and tests."""

    accepted: int = 0
    rejected: int = 0
    duplicates: int = 0
    stale_status: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)


class Ingest:
    """Validate and store device messages; extra handlers per topic kind can be registered."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        *,
        sink: TelemetrySink | None = None,
        errors_kept: int = 50,
    ) -> None:
        self._factory = factory
        self.sink: TelemetrySink = sink or SqlSink()
        self._errors_kept = errors_kept
        self.stats = IngestStats()
        self._handlers: dict[p.TopicKind, list[Handler]] = {}
        self._last_error_log: dict[str, str] = {}

    def register(self, kind: p.TopicKind, handler: Handler) -> None:
        """Run ``handler`` in the same transaction after the built-in handling of ``kind``."""
        self._handlers.setdefault(kind, []).append(handler)

    def handle_many(self, messages: Sequence[tuple[str, bytes]]) -> None:
        """Store a batch of messages in one transaction (each isolated by a savepoint)."""
        now = utcnow()
        with self._factory() as session:
            for topic, payload in messages:
                self._handle_one(session, topic, payload, now)
            session.commit()
        self.sink.flush()

    def handle(self, topic: str, payload: bytes) -> None:
        """Store one message."""
        self.handle_many([(topic, payload)])

    # -- one message ---------------------------------------------------------------------

    def _handle_one(self, session: Session, topic: str, payload: bytes, now: dt.datetime) -> None:
        device_id: str | None = None
        try:
            parsed = p.parse_topic(topic)
            device_id = parsed.device_id
            if parsed.kind in _DEVICE_TO_CP_ONLY_IGNORED:
                return
            _, message = p.decode_message(topic, payload)
        except p.ProtocolError as exc:
            self._reject(session, device_id, topic, exc.field, exc.reason, now)
            return
        if device_id is None:
            return
        device = session.get(Device, device_id)
        if device is None or device.revoked_at is not None:
            self._reject(session, None, topic, "device_id", f"unknown device {device_id!r}", now)
            return
        try:
            with session.begin_nested():
                self._dispatch(session, device, parsed, message, now)
                for handler in self._handlers.get(parsed.kind, ()):
                    handler(session, device, parsed, message, now)
        except IntegrityError:
            # Another ingest worker stored the same (device, seq/id) first: a harmless duplicate.
            self.stats.duplicates += 1
            return
        except Exception as exc:  # a handler bug must not kill ingest for everyone else
            log.exception("handling %s failed", topic)
            self._reject(session, device_id, topic, "$", f"internal error: {exc}", now)
            return
        self.stats.accepted += 1
        self.stats.by_kind[parsed.kind.value] = self.stats.by_kind.get(parsed.kind.value, 0) + 1

    def _dispatch(
        self, session: Session, device: Device, parsed: p.ParsedTopic, msg: Any, now: dt.datetime
    ) -> None:
        if isinstance(msg, p.Status):
            self._status(device, msg, now)
        elif isinstance(msg, p.TelemetryBatch):
            self._telemetry(session, device, msg, now)
        elif isinstance(msg, p.Event):
            self._event(session, device, msg, now)
        elif isinstance(msg, p.TwinReported):
            device.reported = msgspec.to_builtins(msg)
            device.reported_at = now
            device.last_seen = now

    def _status(self, device: Device, msg: p.Status, now: dt.datetime) -> None:
        # A will from an older session must never override a newer birth.
        if msg.session < device.session:
            self.stats.stale_status += 1
            log.info(
                "stale status of %s ignored (session %d < %d)",
                device.id,
                msg.session,
                device.session,
            )
            return
        device.session = msg.session
        device.online = msg.online
        device.status_at = now
        if msg.online:
            device.last_seen = now
            device.agent_version = msg.agent_version
            device.boot_reason = msg.boot_reason

    def _telemetry(
        self, session: Session, device: Device, msg: p.TelemetryBatch, now: dt.datetime
    ) -> None:
        exists = session.execute(
            select(TelemetryBatchRecord.id).where(
                TelemetryBatchRecord.device_id == device.id, TelemetryBatchRecord.seq == msg.seq
            )
        ).first()
        if exists is not None:
            self.stats.duplicates += 1
            return
        samples = [msgspec.to_builtins(s) for s in msg.samples]
        session.add(
            TelemetryBatchRecord(
                device_id=device.id,
                seq=msg.seq,
                ts=_ts(msg.ts),
                received_at=now,
                dropped=msg.dropped,
                samples=samples,
            )
        )
        session.flush()
        self.sink.write(session, device.id, [(s.ts, s.metrics) for s in msg.samples])
        latest = max(msg.samples, key=lambda s: s.ts)
        if device.last_telemetry_at is None or _ts(latest.ts) >= device.last_telemetry_at:
            device.last_telemetry = {
                "ts": latest.ts,
                "metrics": dict(latest.metrics),
                "errors": dict(latest.errors),
            }
            device.last_telemetry_at = _ts(latest.ts)
        device.telemetry_seq = max(device.telemetry_seq, msg.seq)
        device.last_seen = now

    def _event(self, session: Session, device: Device, msg: p.Event, now: dt.datetime) -> None:
        exists = session.execute(
            select(DeviceEvent.id).where(
                DeviceEvent.device_id == device.id, DeviceEvent.event_id == msg.id
            )
        ).first()
        if exists is not None:
            self.stats.duplicates += 1
            return
        session.add(
            DeviceEvent(
                device_id=device.id,
                event_id=msg.id,
                kind=msg.kind,
                severity=msg.severity,
                message=msg.message,
                data=msg.data,
                ts=_ts(msg.ts),
                received_at=now,
            )
        )
        session.flush()
        device.last_seen = now

    # -- refusals ------------------------------------------------------------------------

    def _reject(
        self,
        session: Session,
        device_id: str | None,
        topic: str,
        field_: str,
        reason: str,
        now: dt.datetime,
    ) -> None:
        self.stats.rejected += 1
        key = f"{device_id}:{field_}"
        if self._last_error_log.get(key) != reason:
            # Log a repeating error once, then quietly count it.
            log.warning("refused message on %s: %s: %s", topic, field_, reason)
            self._last_error_log[key] = reason
        known = device_id is not None and session.get(Device, device_id) is not None
        session.add(
            IngestError(
                device_id=device_id if known else None,
                topic=topic[:255],
                field=field_[:255],
                reason=reason[:2000],
                at=now,
            )
        )
        if known:
            device = session.get(Device, device_id)
            assert device is not None
            device.rejected_count += 1
            self._trim_errors(session, device_id)
        session.flush()

    def _trim_errors(self, session: Session, device_id: str | None) -> None:
        keep = (
            select(IngestError.id)
            .where(IngestError.device_id == device_id)
            .order_by(IngestError.id.desc())
            .limit(self._errors_kept)
        )
        session.execute(
            delete(IngestError).where(
                IngestError.device_id == device_id, IngestError.id.not_in(keep)
            )
        )


# Topics the control plane itself publishes; seeing them in a subscription is not an error.
_DEVICE_TO_CP_ONLY_IGNORED: frozenset[p.TopicKind] = frozenset(
    {p.TopicKind.TWIN_DESIRED, p.TopicKind.JOBS_NOTIFY, p.TopicKind.CALL_IN, p.TopicKind.CP_STATUS}
)


def device_subscriptions(share_group: str | None) -> Iterable[str]:
    """The topic filters the control plane's ingest subscribes to.

    Retained state (status, twin/reported) is subscribed by every replica; the streams
    (telemetry, events, job updates) go through a shared subscription when a group is given.
    """
    yield p.device_filter(p.TopicKind.STATUS)
    yield p.device_filter(p.TopicKind.TWIN_REPORTED)
    for kind in (
        p.TopicKind.TELEMETRY,
        p.TopicKind.EVENTS,
        p.TopicKind.JOB_UPDATE,
        p.TopicKind.JOBS_GET,
        p.TopicKind.CALL_OUT,
    ):
        flt = p.device_filter(kind)
        yield f"$share/{share_group}/{flt}" if share_group else flt
