"""The durable prediction log in Cassandra: what was scored, with the feature snapshot used.

- ``predictions``: by transaction id (the learner's lookup), with the snapshot, the champion's
  score, the time a fraud label was seen and the label-stream offsets at which each label value
  was learned (the learner's duplicate guard);
- ``predictions_by_bucket``: by event-time bucket (the label-delay sweep reads one bucket at a
  time), with a flag set when a fraud label arrives;
- ``scorer_clock``: per input partition, the first and latest ``occurred_at`` scored (the
  sweep's event-time clock); ``sweeper``: how far the sweep has gone;
- ``prequential``: by day of the transaction, the test-then-train scores of every model and the
  label (per-day metrics read one partition).

Every row has a TTL (``prediction_ttl``); every write is an upsert keyed by the transaction, so a
replay rewrites the same rows.
"""

# ruff: noqa: S608 - CQL names only the keyspace (a validated identifier); values are bound

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson

from vigie_stores.cassandra import CassandraStore

#: rows of one bucket per unlogged batch (one partition: one mutation)
_BATCH_ROWS = 50
#: ``predictions`` rows per request: an unlogged batch over a few partitions costs the client one
#: request instead of several (the driver's cost is per request); three rows of ~35 features
#: stay under Cassandra's batch size warning (5 KiB)
_ROWS_PER_REQUEST = 3


def schema(keyspace: str, ttl: timedelta) -> list[str]:
    ttl_s = int(ttl.total_seconds())
    opts = f"WITH default_time_to_live = {ttl_s}"
    return [
        f"CREATE TABLE IF NOT EXISTS {keyspace}.predictions (transaction_id text PRIMARY KEY, "
        "customer_id text, occurred_at timestamp, scored_at timestamp, score double, "
        "model_name text, model_version text, features blob, fraud_at timestamp, "
        f"learned_fraud bigint, learned_genuine bigint) {opts}",
        f"CREATE TABLE IF NOT EXISTS {keyspace}.predictions_by_bucket (bucket timestamp, "
        "transaction_id text, customer_id text, occurred_at timestamp, fraud boolean, "
        f"PRIMARY KEY ((bucket), transaction_id)) {opts}",
        f"CREATE TABLE IF NOT EXISTS {keyspace}.scorer_clock (name text, partition int, "
        "first_time timestamp, last_time timestamp, PRIMARY KEY ((name), partition))",
        f"CREATE TABLE IF NOT EXISTS {keyspace}.sweeper (name text PRIMARY KEY, "
        "swept_until timestamp)",
        f"CREATE TABLE IF NOT EXISTS {keyspace}.prequential (day text, transaction_id text, "
        "customer_id text, occurred_at timestamp, fraud boolean, labelled_at timestamp, "
        f"scores map<text, double>, PRIMARY KEY ((day), transaction_id)) {opts}",
    ]


@dataclass(frozen=True, slots=True)
class PredictionRow:
    transaction_id: str
    customer_id: str
    occurred_at: datetime
    scored_at: datetime
    score: float
    model_name: str
    model_version: str
    features: Mapping[str, float]
    bucket: datetime


@dataclass(frozen=True, slots=True)
class StoredPrediction:
    transaction_id: str
    customer_id: str
    occurred_at: datetime
    features: dict[str, float]
    fraud_at: datetime | None
    learned_fraud: int | None
    learned_genuine: int | None


@dataclass(frozen=True, slots=True)
class PrequentialRow:
    day: str
    transaction_id: str
    customer_id: str
    occurred_at: datetime
    fraud: bool
    labelled_at: datetime
    scores: Mapping[str, float]


def day_of(moment: datetime) -> str:
    return moment.astimezone(UTC).date().isoformat()


def _aware(value: datetime | None) -> datetime | None:
    # the driver returns naive UTC datetimes
    return None if value is None else value.replace(tzinfo=UTC)


class PredictionLog:
    def __init__(self, store: CassandraStore, keyspace: str, ttl: timedelta) -> None:
        self.store = store
        self.keyspace = keyspace
        self.ttl = ttl
        ks = keyspace
        self._insert = (
            f"INSERT INTO {ks}.predictions (transaction_id, customer_id, occurred_at, scored_at, "
            "score, model_name, model_version, features) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        )
        self._bucket_insert = (
            f"INSERT INTO {ks}.predictions_by_bucket (bucket, transaction_id, customer_id, "
            "occurred_at) VALUES (?, ?, ?, ?)"
        )
        self._get = (
            f"SELECT transaction_id, customer_id, occurred_at, features, fraud_at, "
            f"learned_fraud, learned_genuine FROM {ks}.predictions WHERE transaction_id IN ?"
        )

    async def ensure_schema(self, replication_factor: int = 1) -> None:
        await self.store.ensure_schema(
            self.keyspace,
            schema(self.keyspace, self.ttl),
            replication={"class": "SimpleStrategy", "replication_factor": replication_factor},
        )

    # -- scorer ------------------------------------------------------------------------------

    async def write(self, rows: Sequence[PredictionRow]) -> None:
        if not rows:
            return
        batches: list[tuple[str, list[Any]]] = []
        for i in range(0, len(rows), _ROWS_PER_REQUEST):
            chunk = rows[i : i + _ROWS_PER_REQUEST]
            params: list[Any] = []
            for r in chunk:
                params += (
                    r.transaction_id,
                    r.customer_id,
                    r.occurred_at,
                    r.scored_at,
                    r.score,
                    r.model_name,
                    r.model_version,
                    orjson.dumps(dict(r.features)),
                )
            batches.append((self._batch(self._insert, len(chunk)), params))
        by_bucket: dict[datetime, list[PredictionRow]] = defaultdict(list)
        for r in rows:
            by_bucket[r.bucket].append(r)
        for bucket, members in by_bucket.items():
            for i in range(0, len(members), _BATCH_ROWS):
                chunk = members[i : i + _BATCH_ROWS]
                cql = self._batch(self._bucket_insert, len(chunk))
                in_bucket: list[Any] = []
                for r in chunk:
                    in_bucket += (bucket, r.transaction_id, r.customer_id, r.occurred_at)
                batches.append((cql, in_bucket))
        # one statement text per chunk size: prepared once each
        by_cql: dict[str, list[list[Any]]] = defaultdict(list)
        for cql, values in batches:
            by_cql[cql].append(values)
        await asyncio.gather(
            *(self.store.execute_many(cql, param_sets) for cql, param_sets in by_cql.items())
        )

    @staticmethod
    def _batch(insert: str, n: int) -> str:
        if n == 1:
            return insert
        inner = " ".join(f"{insert};" for _ in range(n))
        return f"BEGIN UNLOGGED BATCH {inner} APPLY BATCH"

    async def advance_clock(
        self, name: str, times: Mapping[int, tuple[datetime, datetime]]
    ) -> None:
        """Per partition, the (first, last) event time scored (the caller keeps them monotonic)."""
        await self.store.execute_many(
            f"INSERT INTO {self.keyspace}.scorer_clock (name, partition, first_time, last_time) "
            "VALUES (?, ?, ?, ?)",
            [(name, p, first, last) for p, (first, last) in times.items()],
        )

    async def clock(self, name: str) -> dict[int, tuple[datetime, datetime]]:
        rows = await self.store.execute(
            f"SELECT partition, first_time, last_time FROM {self.keyspace}.scorer_clock "
            "WHERE name = ?",
            (name,),
        )
        out: dict[int, tuple[datetime, datetime]] = {}
        for row in rows:
            first, last = _aware(row["first_time"]), _aware(row["last_time"])
            if first is not None and last is not None:
                out[int(row["partition"])] = (first, last)
        return out

    # -- learner and labeller ----------------------------------------------------------------

    async def get(self, transaction_ids: Iterable[str]) -> dict[str, StoredPrediction]:
        ids = sorted(set(transaction_ids))
        found: dict[str, StoredPrediction] = {}
        for i in range(0, len(ids), 100):
            rows = await self.store.execute(self._get, (ids[i : i + 100],))
            for row in rows:
                occurred = _aware(row["occurred_at"])
                if occurred is None:
                    continue
                found[row["transaction_id"]] = StoredPrediction(
                    transaction_id=row["transaction_id"],
                    customer_id=row["customer_id"] or "",
                    occurred_at=occurred,
                    features=orjson.loads(row["features"]) if row["features"] else {},
                    fraud_at=_aware(row["fraud_at"]),
                    learned_fraud=row["learned_fraud"],
                    learned_genuine=row["learned_genuine"],
                )
        return found

    async def mark_fraud(
        self, marks: Sequence[tuple[StoredPrediction, datetime, datetime]]
    ) -> None:
        """(prediction, its bucket, label time): the sweep must not call these genuine."""
        if not marks:
            return
        await self.store.execute_many(
            f"UPDATE {self.keyspace}.predictions SET fraud_at = ? WHERE transaction_id = ?",
            [(at, p.transaction_id) for p, _, at in marks],
        )
        await self.store.execute_many(
            f"UPDATE {self.keyspace}.predictions_by_bucket SET fraud = true "
            "WHERE bucket = ? AND transaction_id = ?",
            [(bucket, p.transaction_id) for p, bucket, _ in marks],
        )

    async def set_learned(self, learned: Sequence[tuple[str, bool, int]]) -> None:
        """(transaction, fraud, label-stream offset) the learner learned."""
        fraud = [(offset, tx) for tx, is_fraud, offset in learned if is_fraud]
        genuine = [(offset, tx) for tx, is_fraud, offset in learned if not is_fraud]
        ks = self.keyspace
        if fraud:
            await self.store.execute_many(
                f"UPDATE {ks}.predictions SET learned_fraud = ? WHERE transaction_id = ?", fraud
            )
        if genuine:
            await self.store.execute_many(
                f"UPDATE {ks}.predictions SET learned_genuine = ? WHERE transaction_id = ?",
                genuine,
            )

    async def bucket_rows(self, bucket: datetime) -> list[tuple[str, str, datetime, bool]]:
        rows = await self.store.execute(
            f"SELECT transaction_id, customer_id, occurred_at, fraud FROM "
            f"{self.keyspace}.predictions_by_bucket WHERE bucket = ?",
            (bucket,),
        )
        out = []
        for row in rows:
            occurred = _aware(row["occurred_at"])
            if occurred is not None:
                out.append(
                    (row["transaction_id"], row["customer_id"] or "", occurred, bool(row["fraud"]))
                )
        return out

    async def swept_until(self, name: str) -> datetime | None:
        rows = await self.store.execute(
            f"SELECT swept_until FROM {self.keyspace}.sweeper WHERE name = ?",
            (name,),
        )
        return _aware(rows[0]["swept_until"]) if rows else None

    async def set_swept_until(self, name: str, until: datetime) -> None:
        await self.store.execute(
            f"INSERT INTO {self.keyspace}.sweeper (name, swept_until) VALUES (?, ?)", (name, until)
        )

    async def write_prequential(self, rows: Sequence[PrequentialRow]) -> None:
        if not rows:
            return
        await self.store.execute_many(
            f"INSERT INTO {self.keyspace}.prequential (day, transaction_id, customer_id, "
            "occurred_at, fraud, labelled_at, scores) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    r.day,
                    r.transaction_id,
                    r.customer_id,
                    r.occurred_at,
                    r.fraud,
                    r.labelled_at,
                    dict(r.scores),
                )
                for r in rows
            ],
        )

    async def correct_prequential(self, rows: Sequence[tuple[str, str]]) -> None:
        """(day, transaction): a fraud label that came after a genuine one."""
        if rows:
            await self.store.execute_many(
                f"UPDATE {self.keyspace}.prequential SET fraud = true "
                "WHERE day = ? AND transaction_id = ?",
                list(rows),
            )

    async def prequential_day(self, day: date | str) -> list[PrequentialRow]:
        key = day if isinstance(day, str) else day.isoformat()
        rows = await self.store.execute(
            f"SELECT day, transaction_id, customer_id, occurred_at, fraud, labelled_at, scores "
            f"FROM {self.keyspace}.prequential WHERE day = ?",
            (key,),
        )
        out = []
        for row in rows:
            occurred, labelled = _aware(row["occurred_at"]), _aware(row["labelled_at"])
            if occurred is None or labelled is None:
                continue
            out.append(
                PrequentialRow(
                    day=row["day"],
                    transaction_id=row["transaction_id"],
                    customer_id=row["customer_id"] or "",
                    occurred_at=occurred,
                    fraud=bool(row["fraud"]),
                    labelled_at=labelled,
                    scores=dict(row["scores"] or {}),
                )
            )
        return out
