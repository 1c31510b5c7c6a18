"""Log records in Cassandra: one table per query, written together, idempotently.

- ``logs``: by service and hour — ``PRIMARY KEY ((service, hour), time, id)``, newest first.
- ``logs_by_trace``: every record of one trace — ``PRIMARY KEY ((trace_id), time, id)``. A slim
  index (where each record is in ``logs``, its span and level): one partition per trace means one
  write request per traced record, so the row is kept small; a trace query reads the few full
  records from ``logs`` afterwards.
- ``logs_by_fingerprint``: occurrences of one error — ``PRIMARY KEY ((fingerprint, day), time,
  id)``; the day bucket keeps a hot error's partition bounded.

Rows are keyed by the record id (derived from topic/partition/offset): a replay overwrites the
same rows. Rows of one partition are sent as one UNLOGGED BATCH (a single-partition batch is
one mutation on one replica set, so it costs about one insert); that is what lets a 2-core
Cassandra keep up with the consumer.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from vigie_stores.cassandra import CassandraStore

from ..handlers.record import LogRecord

COLUMNS = (
    "time",
    "id",
    "ingest_time",
    "source",
    "host",
    "level",
    "message",
    "logger",
    "trace_id",
    "span_id",
    "http_method",
    "http_path",
    "http_status",
    "http_duration_ms",
    "http_remote",
    "http_user_agent",
    "attributes",
    "format",
    "exception_type",
    "fingerprint",
    "redactions",
    "flags",
)
_TYPES = {
    "time": "timestamp",
    "id": "uuid",
    "ingest_time": "timestamp",
    "http_status": "int",
    "http_duration_ms": "double",
    "attributes": "map<text, text>",
    "redactions": "map<text, int>",
    "flags": "set<text>",
}
_BODY = ", ".join(f"{c} {_TYPES.get(c, 'text')}" for c in COLUMNS if c not in ("time", "id"))
#: keep one batch well under Cassandra's mutation limits (and its batch warnings)
_BATCH_BYTES = 48 * 1024
_BATCH_SIZES = (16, 4, 1)
_TTL_DEFAULT = 30 * 24 * 3600


def schema(keyspace: str, ttl_s: int = _TTL_DEFAULT) -> list[str]:
    opts = (
        "WITH CLUSTERING ORDER BY (time DESC, id ASC) "
        f"AND default_time_to_live = {ttl_s} "
        "AND compaction = {'class': 'TimeWindowCompactionStrategy', "
        "'compaction_window_unit': 'HOURS', 'compaction_window_size': 6}"
    )
    return [
        f"CREATE TABLE IF NOT EXISTS {keyspace}.logs (service text, hour timestamp, "
        f"time timestamp, id uuid, {_BODY}, PRIMARY KEY ((service, hour), time, id)) {opts}",
        f"CREATE TABLE IF NOT EXISTS {keyspace}.logs_by_trace (trace_id text, time timestamp, "
        "id uuid, service text, hour timestamp, span_id text, level text, "
        f"PRIMARY KEY ((trace_id), time, id)) {opts}",
        f"CREATE TABLE IF NOT EXISTS {keyspace}.logs_by_fingerprint (fingerprint text, "
        f"day timestamp, service text, time timestamp, id uuid, "
        f"{_BODY.replace(', fingerprint text', '')}, "
        f"PRIMARY KEY ((fingerprint, day), time, id)) {opts}",
    ]


def hour_of(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def day_of(moment: datetime) -> datetime:
    return hour_of(moment).replace(hour=0)


def _values(record: LogRecord) -> dict[str, Any]:
    http = record.http
    return {
        "service": record.service,
        "time": record.time,
        "id": uuid.UUID(record.id),
        "ingest_time": record.ingest_time,
        "source": record.source,
        "host": record.host,
        "level": record.level,
        "message": record.message,
        "logger": record.logger,
        "trace_id": record.trace_id,
        "span_id": record.span_id,
        "http_method": http.method,
        "http_path": http.path,
        "http_status": http.status,
        "http_duration_ms": http.duration_ms,
        "http_remote": http.remote,
        "http_user_agent": http.user_agent,
        "attributes": record.attributes,
        "format": record.format,
        "exception_type": record.exception_type,
        "fingerprint": record.fingerprint,
        "redactions": record.redactions,
        "flags": set(record.flags),
    }


def _size(record: LogRecord) -> int:
    return (
        300
        + len(record.message)
        + sum(len(k) + len(v) for k, v in record.attributes.items())
        + len(record.http.path or "")
    )


class _Table:
    """One table's INSERT, and the UNLOGGED BATCH forms of it for 16 and 4 rows."""

    def __init__(self, keyspace: str, name: str, columns: Sequence[str]) -> None:
        self.columns = tuple(columns)
        insert = (
            f"INSERT INTO {keyspace}.{name} ({', '.join(self.columns)}) "  # noqa: S608 - identifiers validated, values bound
            f"VALUES ({', '.join('?' for _ in self.columns)})"
        )
        self.cql = {
            n: insert
            if n == 1
            else "BEGIN UNLOGGED BATCH " + "; ".join([insert] * n) + "; APPLY BATCH"
            for n in _BATCH_SIZES
        }

    def params(self, values: dict[str, Any]) -> list[Any]:
        return [values[c] for c in self.columns]


class LogStore:
    def __init__(self, store: CassandraStore, keyspace: str) -> None:
        self.store = store
        self.keyspace = keyspace
        base = ("service", "hour", *COLUMNS)
        self._logs = _Table(keyspace, "logs", base)
        self._by_trace = _Table(
            keyspace,
            "logs_by_trace",
            ("trace_id", "time", "id", "service", "hour", "span_id", "level"),
        )
        self._by_fp = _Table(keyspace, "logs_by_fingerprint", ("day", "service", *COLUMNS))

    async def ensure_schema(self, replication_factor: int = 1) -> None:
        await self.store.ensure_schema(
            self.keyspace,
            schema(self.keyspace),
            replication={"class": "SimpleStrategy", "replication_factor": replication_factor},
        )

    # -- writes ------------------------------------------------------------------------------

    async def write(self, records: Sequence[LogRecord]) -> None:
        """Upsert every record into every table it belongs to; raises ``StoreError``s."""
        if not records:
            return
        rows = [(r, _values(r)) for r in records]
        for record, values in rows:
            values["hour"] = hour_of(record.time)
            values["day"] = day_of(record.time)
        jobs = [
            self._grouped(self._logs, rows, lambda r: (r.service, hour_of(r.time))),
            self._grouped(
                self._by_trace, [x for x in rows if x[0].trace_id], lambda r: r.trace_id or ""
            ),
            self._grouped(
                self._by_fp,
                [x for x in rows if x[0].fingerprint],
                lambda r: (r.fingerprint, day_of(r.time)),
            ),
        ]
        await asyncio.gather(*jobs)

    async def _grouped(
        self,
        table: _Table,
        rows: Sequence[tuple[LogRecord, dict[str, Any]]],
        partition: Callable[[LogRecord], Hashable],
    ) -> None:
        if not rows:
            return
        groups: dict[Hashable, list[tuple[LogRecord, dict[str, Any]]]] = defaultdict(list)
        for row in rows:
            groups[partition(row[0])].append(row)
        by_size: dict[int, list[list[Any]]] = defaultdict(list)
        for members in groups.values():
            for chunk in _chunks(members):
                start = 0
                while start < len(chunk):
                    size = next(n for n in _BATCH_SIZES if n <= len(chunk) - start)
                    params: list[Any] = []
                    for _, values in chunk[start : start + size]:
                        params.extend(table.params(values))
                    by_size[size].append(params)
                    start += size
        await asyncio.gather(
            *(self.store.execute_many(table.cql[n], p) for n, p in by_size.items())
        )

    # -- queries -----------------------------------------------------------------------------

    async def by_service(
        self,
        service: str,
        start: datetime,
        end: datetime,
        *,
        levels: frozenset[str] | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Newest first, hour bucket by hour bucket from ``end`` back to ``start``.

        The level filter is applied here, not by Cassandra (no ALLOW FILTERING): each bucket is
        read in pages of ``limit`` until enough rows matched.
        """
        cql = (
            f"SELECT * FROM {self.keyspace}.logs WHERE service = ? AND hour = ? "  # noqa: S608 - identifiers validated, values bound
            "AND time >= ? AND time < ? LIMIT ?"
        )
        found: list[dict[str, Any]] = []
        hour = hour_of(end)
        while hour >= hour_of(start) and len(found) < limit:
            upper = end
            while len(found) < limit:
                fetch = limit if levels is None else max(limit * 4, 200)
                rows = await self.store.execute(cql, (service, hour, start, upper, fetch))
                for row in rows:
                    if levels is None or row["level"] in levels:
                        found.append(row)
                        if len(found) >= limit:
                            break
                if len(rows) < fetch:
                    break
                # rows share a time only when ids differ: step one microsecond below the last
                upper = _aware(rows[-1]["time"]) - timedelta(microseconds=1)
            hour -= timedelta(hours=1)
        return found

    async def by_trace(self, trace_id: str, limit: int = 1000) -> list[dict[str, Any]]:
        index = await self.store.execute(
            f"SELECT service, hour, time, id FROM {self.keyspace}.logs_by_trace "  # noqa: S608 - identifiers validated, values bound
            "WHERE trace_id = ? LIMIT ?",
            (trace_id.lower(), limit),
        )
        cql = (
            f"SELECT * FROM {self.keyspace}.logs WHERE service = ? AND hour = ? AND time = ? "  # noqa: S608 - identifiers validated, values bound
            "AND id = ?"
        )
        found = await asyncio.gather(
            *(self.store.execute(cql, (r["service"], r["hour"], r["time"], r["id"])) for r in index)
        )
        # a record whose logs row expired (TTL) or is not written yet is left out
        rows = [row for rows in found for row in rows]
        return sorted(rows, key=lambda row: row["time"])

    async def by_fingerprint(
        self, fingerprint: str, start: datetime, end: datetime, limit: int = 100
    ) -> list[dict[str, Any]]:
        cql = (
            f"SELECT * FROM {self.keyspace}.logs_by_fingerprint WHERE fingerprint = ? "  # noqa: S608 - identifiers validated, values bound
            "AND day = ? AND time >= ? AND time < ? LIMIT ?"
        )
        found: list[dict[str, Any]] = []
        day = day_of(end)
        while day >= day_of(start) and len(found) < limit:
            found.extend(
                await self.store.execute(cql, (fingerprint, day, start, end, limit - len(found)))
            )
            day -= timedelta(days=1)
        return found


def _aware(moment: datetime) -> datetime:
    """The driver returns naive UTC datetimes."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _chunks(
    members: list[tuple[LogRecord, dict[str, Any]]],
) -> list[list[tuple[LogRecord, dict[str, Any]]]]:
    """Consecutive rows of one partition, cut so no batch grows past ``_BATCH_BYTES``."""
    out: list[list[tuple[LogRecord, dict[str, Any]]]] = []
    current: list[tuple[LogRecord, dict[str, Any]]] = []
    size = 0
    for row in members:
        row_size = _size(row[0])
        if current and (size + row_size > _BATCH_BYTES or len(current) >= _BATCH_SIZES[0]):
            out.append(current)
            current, size = [], 0
        current.append(row)
        size += row_size
    if current:
        out.append(current)
    return out
