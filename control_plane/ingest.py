"""What the control plane does with each message a device sends.

Pure of MQTT: :class:`Ingest` takes (topic, payload) pairs and stores them in one transaction.
Every payload is validated by the contract; a bad one is refused with the field named, counted on
its device and kept in ``ingest_errors`` — it never stops the loop and never touches stored data.

Telemetry is most of the traffic, so a batch of it is stored with a few statements, not a few
per message: the devices are checked in one query, the batches go in with one multi-row
``INSERT ... ON CONFLICT (device_id, seq) DO NOTHING RETURNING`` (so a QoS 1 duplicate, or a
batch another ingest worker stored first, is simply not returned), each device's latest state
is one row of an executemany, and the new batches go to the sink in one call. Status, twin and
event messages are rare and keep their per-message path.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
from sqlalchemy import Connection, Table, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from edge import protocol as p

from .db import utcnow
from .models import Device, DeviceEvent, IngestError, TelemetryBatchRecord
from .sinks import EmbeddedSink, TelemetrySink

log = logging.getLogger(__name__)

Handler = Callable[[Session, Device, p.ParsedTopic, Any, dt.datetime], None]
Samples = list[tuple[float, dict[str, float]]]
_BATCHES: Table = TelemetryBatchRecord.__table__  # type: ignore[assignment]
_DEVICES: Table = Device.__table__  # type: ignore[assignment]
_JSON = msgspec.json.Encoder()


class _BulkSql:
    """Hand-written statements for the telemetry hot path, on SQLite and PostgreSQL.

    SQLAlchemy's per-parameter processing (datetime formatting, JSON) cost more than the
    database's own work at thousands of batches a second, so these take ready values.
    """

    ROWS_PER_INSERT = 150  # 6 parameters a row: under old SQLite's 999-variable limit

    def __init__(self, dialect: str) -> None:
        self.sqlite = dialect == "sqlite"
        ph = "?" if self.sqlite else "%s"
        as_json = ph if self.sqlite else f"CAST({ph} AS JSON)"
        self._row = f"({ph}, {ph}, {ph}, {ph}, {ph}, {as_json})"
        self._head = (
            f"INSERT INTO {_BATCHES.name} (device_id, seq, ts, received_at, dropped, samples) "
            "VALUES "
        )
        # A (device, seq) stored before (a QoS 1 redelivery, another worker) is not returned.
        self._tail = " ON CONFLICT (device_id, seq) DO NOTHING RETURNING device_id, seq"
        # On PostgreSQL the rows travel as one array per column: a short statement the driver
        # parses once (a 900-placeholder one it re-parsed for every batch) and the server
        # plans quickly; in binary (%b), so the JSON texts are not escaped into array syntax.
        self._insert_pg = (
            f"INSERT INTO {_BATCHES.name} (device_id, seq, ts, received_at, dropped, samples) "
            "SELECT d, s, t, %s, dr, CAST(j AS JSON) FROM unnest("
            "%b::text[], %b::bigint[], %b::timestamptz[], %b::int[], %b::text[]"
            ") AS u(d, s, t, dr, j)" + self._tail
        )
        # The CASEs compare with the row's current values, so two ingest workers (or an old
        # batch replayed late) never move a device's sequence or latest sample backwards.
        newer = f"(last_telemetry_at IS NULL OR last_telemetry_at <= {ph})"
        self.update = (
            f"UPDATE {_DEVICES.name} SET last_seen = {ph}, "
            f"telemetry_seq = CASE WHEN telemetry_seq < {ph} THEN {ph} ELSE telemetry_seq END, "
            f"last_telemetry = CASE WHEN {newer} THEN {as_json} ELSE last_telemetry END, "
            f"last_telemetry_at = CASE WHEN {newer} THEN {ph} ELSE last_telemetry_at END "
            f"WHERE id = {ph}"
        )

        # On PostgreSQL: every device's row locked first, in id order (two control planes
        # then cannot deadlock), and updated by one statement from arrays, not one per device.
        self._lock_pg = (
            f"SELECT id FROM {_DEVICES.name} WHERE id = ANY(%b) ORDER BY id FOR NO KEY UPDATE"
        )
        newer_pg = "(d.last_telemetry_at IS NULL OR d.last_telemetry_at <= v.at)"
        self._update_pg = (
            f"UPDATE {_DEVICES.name} AS d SET last_seen = %s, "
            "telemetry_seq = CASE WHEN d.telemetry_seq < v.seq THEN v.seq "
            "ELSE d.telemetry_seq END, "
            f"last_telemetry = CASE WHEN {newer_pg} THEN CAST(v.latest AS JSON) "
            "ELSE d.last_telemetry END, "
            f"last_telemetry_at = CASE WHEN {newer_pg} THEN v.at ELSE d.last_telemetry_at END "
            "FROM unnest(%b::text[], %b::bigint[], %b::timestamptz[], %b::text[]) "
            "AS v(id, seq, at, latest) WHERE d.id = v.id"
        )

    def when(self, value: dt.datetime) -> Any:
        """A UTC datetime as the driver should get it."""
        # On SQLite: SQLAlchemy's text format for DateTime, which sorts by time.
        # isoformat then cutting the offset off: the same text as strftime, in half the time.
        return value.isoformat(" ", "microseconds")[:26] if self.sqlite else value

    def insert_batches(
        self, conn: Connection, rows: Sequence[tuple[Any, ...]]
    ) -> set[tuple[str, int]]:
        """Insert (device_id, seq, ts, received_at, dropped, samples JSON) rows; the new keys."""
        stored: set[tuple[str, int]] = set()
        if not self.sqlite:
            if rows:
                device_ids, seqs, tss, stamps, dropped, samples = zip(*rows, strict=True)
                params = (stamps[0], list(device_ids), list(seqs), list(tss), list(dropped))
                result = conn.exec_driver_sql(self._insert_pg, (*params, list(samples)))
                stored.update((d, s) for d, s in result)
            return stored
        for start in range(0, len(rows), self.ROWS_PER_INSERT):
            chunk = rows[start : start + self.ROWS_PER_INSERT]
            sql = self._head + ", ".join([self._row] * len(chunk)) + self._tail
            params = tuple(value for row in chunk for value in row)
            stored.update((d, s) for d, s in conn.exec_driver_sql(sql, params))
        return stored

    def active_ids(self, conn: Connection, ids: Sequence[str]) -> set[str]:
        """Which of ``ids`` are registered and not revoked."""
        if not self.sqlite:
            sql = f"SELECT id FROM {_DEVICES.name} WHERE revoked_at IS NULL AND id = ANY(%s)"
            return {row[0] for row in conn.exec_driver_sql(sql, (list(ids),))}
        ph = "?"
        found: set[str] = set()
        for start in range(0, len(ids), 500):
            chunk = tuple(ids[start : start + 500])
            marks = ", ".join([ph] * len(chunk))
            sql = f"SELECT id FROM {_DEVICES.name} WHERE revoked_at IS NULL AND id IN ({marks})"
            found.update(row[0] for row in conn.exec_driver_sql(sql, chunk))
        return found

    def update_latest(self, conn: Connection, rows: Sequence[tuple[Any, ...]]) -> None:
        """(now, seq, seq, at, latest JSON, at, at, device_id) rows, as one executemany.

        In device order: two control planes updating the same devices then lock their rows in
        the same order, and cannot deadlock each other.
        """
        ordered = sorted(rows, key=lambda row: row[-1])
        if self.sqlite or not ordered:
            conn.exec_driver_sql(self.update, ordered)
            return
        ids = [row[7] for row in ordered]
        conn.exec_driver_sql(self._lock_pg, (ids,))
        params = (
            ordered[0][0],
            ids,
            [row[1] for row in ordered],
            [row[3] for row in ordered],
            [row[4] for row in ordered],
        )
        conn.exec_driver_sql(self._update_pg, params)


_BULK = {name: _BulkSql(name) for name in ("sqlite", "postgresql")}


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
        self.sink: TelemetrySink = sink or EmbeddedSink()
        self._errors_kept = errors_kept
        self.stats = IngestStats()
        self._handlers: dict[p.TopicKind, list[Handler]] = {}
        self._last_error_log: dict[str, str] = {}
        bind = factory.kw.get("bind")
        sqlite_db = bind is not None and bind.dialect.name == "sqlite"
        self._write_turn: contextlib.AbstractContextManager[Any] = (
            threading.Lock() if sqlite_db else contextlib.nullcontext()
        )

    def register(self, kind: p.TopicKind, handler: Handler) -> None:
        """Run ``handler`` in the same transaction after the built-in handling of ``kind``."""
        self._handlers.setdefault(kind, []).append(handler)

    def handle_many(self, messages: Sequence[tuple[str, bytes]]) -> None:
        """Store a batch of messages in one transaction (each isolated from the others)."""
        # Decode before the transaction: on SQLite it holds the one write lock, which another
        # ingest worker may be waiting for meanwhile.
        decoded = [_decode(topic, payload) for topic, payload in messages]
        # Workers of this process take turns here rather than in SQLite's busy handler, which
        # sleeps in growing steps (up to 100 ms) and so often wakes long after the lock is free.
        with self._write_turn, self._factory() as session:
            now = utcnow()
            _begin_write(session)
            telemetry: list[tuple[str, p.ParsedTopic, p.TelemetryBatch]] = []
            for topic, parsed, message, error in decoded:
                if error is not None:
                    # A topic that does not parse names no valid device: kept unattributed.
                    device_id = parsed.device_id if parsed is not None else None
                    self._reject(session, device_id, topic, error.field, error.reason, now)
                elif parsed is None:
                    continue  # a topic the control plane itself publishes
                elif isinstance(message, p.TelemetryBatch):
                    telemetry.append((topic, parsed, message))  # stored in bulk below
                else:
                    self._handle_one(session, topic, parsed, message, now)
            if telemetry:
                self._telemetry_many(session, telemetry, now)
            session.commit()
        self.sink.flush()

    def handle(self, topic: str, payload: bytes) -> None:
        """Store one message."""
        self.handle_many([(topic, payload)])

    # -- one message ---------------------------------------------------------------------

    def _known(
        self, session: Session, device: Device | None, topic: str, device_id: str, now: dt.datetime
    ) -> bool:
        if device is None or device.revoked_at is not None:
            self._reject(session, None, topic, "device_id", f"unknown device {device_id!r}", now)
            return False
        return True

    def _handle_one(
        self,
        session: Session,
        topic: str,
        parsed: p.ParsedTopic,
        message: Any,
        now: dt.datetime,
    ) -> None:
        device_id = parsed.device_id
        assert device_id is not None
        device = session.get(Device, device_id)
        if not self._known(session, device, topic, device_id, now):
            return
        assert device is not None
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
        self._accepted(parsed.kind)

    def _accepted(self, kind: p.TopicKind, n: int = 1) -> None:
        self.stats.accepted += n
        self.stats.by_kind[kind.value] = self.stats.by_kind.get(kind.value, 0) + n

    # -- telemetry, in bulk ----------------------------------------------------------------

    def _telemetry_many(
        self,
        session: Session,
        items: list[tuple[str, p.ParsedTopic, p.TelemetryBatch]],
        now: dt.datetime,
    ) -> None:
        ids = {parsed.device_id for _, parsed, _ in items if parsed.device_id}
        bulk = _BULK.get(session.get_bind().dialect.name)
        # Only the ids: loading whole rows (their JSON twins) would cost more than the insert.
        if bulk is not None:
            active = bulk.active_ids(session.connection(), sorted(ids))
        else:
            active = set(
                session.execute(
                    select(Device.id).where(Device.id.in_(ids), Device.revoked_at.is_(None))
                ).scalars()
            )
        fresh: list[tuple[str, p.ParsedTopic, p.TelemetryBatch]] = []
        seen: set[tuple[str, int]] = set()
        for topic, parsed, msg in items:
            device_id = parsed.device_id
            assert device_id is not None
            if device_id not in active:
                self._reject(
                    session, None, topic, "device_id", f"unknown device {device_id!r}", now
                )
                continue
            if (device_id, msg.seq) in seen:  # a QoS 1 duplicate inside this batch
                self.stats.duplicates += 1
                continue
            seen.add((device_id, msg.seq))
            fresh.append((topic, parsed, msg))
        if not fresh:
            return
        stored = self._insert_batches(session, bulk, fresh, now)
        handlers = self._handlers.get(p.TopicKind.TELEMETRY)
        written: list[tuple[str, Samples]] = []
        latest: dict[str, tuple[int, p.Sample]] = {}
        for topic, parsed, msg in fresh:
            device_id = parsed.device_id
            assert device_id is not None
            if (device_id, msg.seq) not in stored:
                self.stats.duplicates += 1  # stored before (redelivery, or another worker)
                continue
            written.append((device_id, [(s.ts, s.metrics) for s in msg.samples]))
            if handlers or bulk is None:
                # Through the ORM: handlers get the device row up to date with this batch.
                device = session.get(Device, device_id)
                assert device is not None
                self._latest(device, msg, now)
                if handlers and not self._run_handlers(session, device, topic, parsed, msg, now):
                    continue
            else:
                newest = max(msg.samples, key=lambda s: s.ts)
                seq, sample = latest.get(device_id, (msg.seq, newest))
                latest[device_id] = (
                    max(seq, msg.seq),
                    newest if newest.ts >= sample.ts else sample,
                )
            self._accepted(p.TopicKind.TELEMETRY)
        if latest and bulk is not None:
            stamp = bulk.when(now)
            rows = []
            for device_id, (seq, sample) in latest.items():
                at = bulk.when(_ts(sample.ts))
                value = {"ts": sample.ts, "metrics": sample.metrics, "errors": sample.errors}
                rows.append((stamp, seq, seq, at, _JSON.encode(value).decode(), at, at, device_id))
            bulk.update_latest(session.connection(), rows)
        write_many = getattr(self.sink, "write_many", None)
        if write_many is not None:
            write_many(session, written)
        else:
            for device_id, samples in written:
                self.sink.write(session, device_id, samples)

    def _insert_batches(
        self,
        session: Session,
        bulk: _BulkSql | None,
        fresh: list[tuple[str, p.ParsedTopic, p.TelemetryBatch]],
        now: dt.datetime,
    ) -> set[tuple[str, int]]:
        """Insert the batches not stored yet; returns the (device, seq) really inserted."""
        if bulk is not None:
            stamp = bulk.when(now)
            # The samples go in as the JSON text msgspec writes: a JSON column type would
            # build Python objects only for json.dumps to write them out again.
            return bulk.insert_batches(
                session.connection(),
                [
                    (
                        parsed.device_id,
                        msg.seq,
                        bulk.when(_ts(msg.ts)),
                        stamp,
                        msg.dropped,
                        _JSON.encode(msg.samples).decode(),
                    )
                    for _, parsed, msg in fresh
                ],
            )
        # Other databases: look first, insert the rest (a racing worker makes this batch fail
        # and be logged, which the two supported databases never do).
        rows = [
            {
                "device_id": parsed.device_id,
                "seq": msg.seq,
                "ts": _ts(msg.ts),
                "received_at": now,
                "dropped": msg.dropped,
                "samples": msgspec.to_builtins(msg.samples),
            }
            for _, parsed, msg in fresh
        ]
        keys = {(r["device_id"], r["seq"]) for r in rows}
        existing = set(
            session.execute(
                select(TelemetryBatchRecord.device_id, TelemetryBatchRecord.seq).where(
                    TelemetryBatchRecord.device_id.in_({k[0] for k in keys}),
                    TelemetryBatchRecord.seq.in_({k[1] for k in keys}),
                )
            ).all()
        )
        new_rows = [r for r in rows if (r["device_id"], r["seq"]) not in existing]
        if new_rows:
            session.execute(_BATCHES.insert(), new_rows)
        return {(r["device_id"], r["seq"]) for r in new_rows}

    def _latest(self, device: Device, msg: p.TelemetryBatch, now: dt.datetime) -> None:
        """Keep the device's newest sample and sequence number."""
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

    def _run_handlers(
        self,
        session: Session,
        device: Device,
        topic: str,
        parsed: p.ParsedTopic,
        msg: p.TelemetryBatch,
        now: dt.datetime,
    ) -> bool:
        try:
            with session.begin_nested():
                for handler in self._handlers.get(parsed.kind, ()):
                    handler(session, device, parsed, msg, now)
        except Exception as exc:  # the batch is stored; only the handler's work is undone
            log.exception("handling %s failed", topic)
            self._reject(session, device.id, topic, "$", f"internal error: {exc}", now)
            return False
        return True

    def _dispatch(
        self, session: Session, device: Device, parsed: p.ParsedTopic, msg: Any, now: dt.datetime
    ) -> None:
        if isinstance(msg, p.Status):
            self._status(device, msg, now)
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


Decoded = tuple[str, p.ParsedTopic | None, Any, p.ProtocolError | None]


def _decode(topic: str, payload: bytes) -> Decoded:
    """(topic, parsed, message, None), or (topic, parsed?, None, error); parsed None = ignore."""
    parsed: p.ParsedTopic | None = None
    try:
        parsed = p.parse_topic(topic)
        if parsed.kind in _DEVICE_TO_CP_ONLY_IGNORED or parsed.device_id is None:
            return topic, None, None, None
        if parsed.kind is p.TopicKind.TELEMETRY:  # most of the traffic: parse the topic once
            return topic, parsed, p.decode(payload, p.TelemetryBatch), None
        _, message = p.decode_message(topic, payload)
    except p.ProtocolError as exc:
        return topic, parsed, None, exc
    return topic, parsed, message, None


def _begin_write(session: Session) -> None:
    """On SQLite, take the write lock first (BEGIN IMMEDIATE), waiting for other writers.

    SQLite's default deferred transaction reads first and upgrades to a writer later; when
    another ingest worker committed in between, the upgrade fails at once with "database is
    locked" (the busy timeout does not apply to it) and the whole batch would be lost.
    """
    if session.get_bind().dialect.name == "sqlite":
        session.connection().exec_driver_sql("BEGIN IMMEDIATE")


# Topics the control plane itself publishes; seeing them in a subscription is not an error.
_DEVICE_TO_CP_ONLY_IGNORED: frozenset[p.TopicKind] = frozenset(
    {p.TopicKind.TWIN_DESIRED, p.TopicKind.JOBS_NOTIFY, p.TopicKind.CALL_IN, p.TopicKind.CP_STATUS}
)


def device_subscriptions(share_group: str | None) -> Iterable[str]:
    """The topic filters the control plane's ingest subscribes to.

    Retained state (status, twin/reported) is subscribed by every replica; the streams
    (telemetry, events, job updates) go through a shared subscription when a group is given.
    Call signalling (call/out) is not ingested: the care relay subscribes to it itself,
    unshared, because the replica holding the caregiver's WebSocket must see every answer.
    """
    yield p.device_filter(p.TopicKind.STATUS)
    yield p.device_filter(p.TopicKind.TWIN_REPORTED)
    for kind in (
        p.TopicKind.TELEMETRY,
        p.TopicKind.EVENTS,
        p.TopicKind.JOB_UPDATE,
        p.TopicKind.JOBS_GET,
    ):
        flt = p.device_filter(kind)
        yield f"$share/{share_group}/{flt}" if share_group else flt
