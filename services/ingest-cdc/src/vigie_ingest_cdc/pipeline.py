"""The batch handler: parse → redact → map → publish → mirror → lake → dead letters.

The consumer loop commits the batch's offsets when ``handle`` returns, so everything the batch
produced is acknowledged by then (exactly-once in effect: the events carry deterministic ids, the
mirrors are guarded by the LSN, lake files are named by offsets).

Two departures from the runtime's defaults, both about card numbers and money:

- Bad input is dead-lettered here, not by the loop, because the loop sends the original bytes
  and those may hold a PAN in clear. Dead letters from this handler carry the change with its
  PII already replaced (or, for bytes that do not parse, with PAN-like digit runs masked).
- A store or Kafka that is unavailable raises ``Backpressure``, not ``Retryable``: the loop would
  dead-letter the records after its last retry, and a good change must never be skipped (nor
  its clear bytes dead-lettered) because MongoDB was down. The loop pauses and tries again,
  with growing delays, for as long as it takes.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Any, Protocol

import orjson
from opentelemetry.context import Context

from vigie_runtime import Backoff, Backpressure, Message, Retryable, get_logger
from vigie_stores import StoreUnavailable
from vigie_stores.lake import RawRecord

from .adapters.mirrors import MirrorOutcome
from .errors import BadChange
from .handlers import (
    CardRef,
    Change,
    Lookups,
    MirrorWrite,
    Op,
    Pseudonymizer,
    Publication,
    is_heartbeat,
    map_change,
    parse_change,
    scrub,
)
from .handlers.normalize import from_epoch_ms
from .status import CdcMetrics, Status

_log = get_logger(__name__)


class EventSink(Protocol):
    async def publish(self, items: Sequence[tuple[Publication, Context]]) -> None: ...


class MirrorSink(Protocol):
    async def apply(self, writes: Sequence[MirrorWrite]) -> MirrorOutcome: ...

    async def truncate(self, collection: str, version: int) -> int: ...

    async def customers_of(self, transaction_ids: Sequence[str]) -> dict[str, str]: ...

    async def cards(self, card_ids: Sequence[str]) -> dict[str, CardRef]: ...


class LakeSink(Protocol):
    async def write(self, records: Sequence[RawRecord]) -> list[str]: ...


class DeadLetterSink(Protocol):
    async def publish(self, failures: Sequence[tuple[Message[Any], BaseException]]) -> None: ...


class Pipeline:
    def __init__(
        self,
        *,
        tables: Sequence[str],
        pii: Pseudonymizer,
        events: EventSink,
        mirrors: MirrorSink,
        lake: LakeSink | None,
        dead_letters: DeadLetterSink,
        status: Status,
        metrics: CdcMetrics | None = None,
        backoff_max_s: float = 30.0,
    ) -> None:
        self._tables = frozenset(tables)
        self._pii = pii
        self._events = events
        self._mirrors = mirrors
        self._lake = lake
        self._dead_letters = dead_letters
        self.status = status
        self._metrics = metrics
        self._backoff = Backoff(initial=0.2, cap=backoff_max_s)
        self._failures = 0

    async def handle(self, batch: Sequence[Message[bytes | None]]) -> None:
        try:
            await self._handle(batch)
        except (StoreUnavailable, Retryable) as exc:
            self._failures += 1
            delay = self._backoff.ceiling(self._failures)
            if self.status.unavailable_since is None:
                self.status.unavailable_since = time.time()
            self.status.last_unavailable_error = str(exc)
            _log.warning("dependency unavailable, pausing", error=str(exc), retry_in_s=delay)
            raise Backpressure(delay, f"dependency unavailable: {exc}") from exc
        self._failures = 0
        self.status.unavailable_since = None

    async def _handle(self, batch: Sequence[Message[bytes | None]]) -> None:
        now = time.time()
        accepted: list[tuple[Message[bytes | None], Change]] = []
        bad: list[tuple[Message[Any], BadChange]] = []
        lake: list[RawRecord] = []
        tombstones = 0
        for message in batch:
            if is_heartbeat(message.topic):
                continue
            if message.value is None:
                # Debezium's tombstone after a delete (for compaction): nothing happened
                tombstones += 1
                continue
            try:
                change = parse_change(message.value, self._tables)
            except BadChange as exc:
                bad.append((dataclasses.replace(message, raw=scrub(message.value)), exc))
                continue
            try:
                accepted.append((message, self._pii.change(change)))
            except BadChange as exc:
                redacted = self._pii.redact_rows_quietly(change)
                bad.append((dataclasses.replace(message, raw=_json(redacted)), exc))

        lookups = await self._lookups([change for _, change in accepted])
        # one customer's changes may sit on several CDC partitions: publish in commit order
        accepted.sort(key=lambda mc: (mc[1].source_ts_ms, mc[1].lsn, mc[0].offset))
        publications: list[tuple[Publication, Context]] = []
        writes: list[MirrorWrite] = []
        truncates: list[tuple[str, int]] = []
        done: list[Change] = []
        announced: list[Change] = []
        for message, change in accepted:
            try:
                outputs = map_change(change, lookups)
            except BadChange as exc:
                bad.append((dataclasses.replace(message, raw=_json(change)), exc))
                continue
            publications.extend((p, message.context) for p in outputs.events)
            if outputs.events:
                announced.append(change)
            if outputs.mirror is not None:
                writes.append(outputs.mirror)
            if outputs.truncate is not None:
                truncates.append((outputs.truncate, outputs.truncate_version))
            done.append(change)
            lake.append(
                RawRecord(
                    topic=message.topic,
                    partition=message.partition,
                    offset=message.offset,
                    key=message.key,
                    value=_json(change),
                    event_time=from_epoch_ms(change.source_ts_ms),
                    ingest_time=from_epoch_ms(int(now * 1000)),
                    headers=message.headers,
                )
            )

        mapped_at = time.time()
        await self._events.publish(publications)
        published_at = time.time()
        outcome = await self._mirrors.apply(writes)
        for table, version in truncates:
            removed = await self._mirrors.truncate(table, version)
            _log.warning("table truncated", table=table, lsn=version, documents=removed)
        mirrored_at = time.time()
        files = await self._lake.write(lake) if self._lake is not None else []
        lake_at = time.time()
        if bad:
            await self._dead_letters.publish(bad)
            for failed, why in bad:
                _log.warning("change dead-lettered", position=failed.position, reason=why.reason)
        self._account(done, publications, bad, outcome, len(files), tombstones)
        stages = self.status.stage_seconds
        for stage, seconds in (
            ("parse_map", mapped_at - now),
            ("publish", published_at - mapped_at),
            ("mirror", mirrored_at - published_at),
            ("lake", lake_at - mirrored_at),
        ):
            stages[stage] = stages.get(stage, 0.0) + seconds
        self._observe(done, announced, published_at, mirrored_at)

    async def _lookups(self, changes: Sequence[Change]) -> Lookups:
        """Customer of each transaction a refund or dispute names, card of each new payment:
        from this batch first, then from the mirrors."""
        customers: dict[str, str] = {}
        cards: dict[str, CardRef] = {}
        wanted_tx: set[str] = set()
        wanted_cards: set[str] = set()
        for change in changes:
            row = change.row or {}
            if change.table == "transactions":
                if row.get("id") is not None and row.get("customer_id") is not None:
                    customers[str(row["id"])] = str(row["customer_id"])
                if change.op in (Op.CREATE, Op.READ) and row.get("card_id") is not None:
                    wanted_cards.add(str(row["card_id"]))
            elif change.table == "cards" and change.op is not Op.DELETE:
                cards[str(row.get("id"))] = CardRef(
                    row.get("card_token"), row.get("card_bin"), row.get("card_last4")
                )
            elif change.table in ("refunds", "disputes") and row.get("transaction_id") is not None:
                wanted_tx.add(str(row["transaction_id"]))
        missing_tx = sorted(wanted_tx - customers.keys())
        if missing_tx:
            customers.update(await self._mirrors.customers_of(missing_tx))
        missing_cards = sorted(wanted_cards - cards.keys())
        if missing_cards:
            cards.update(await self._mirrors.cards(missing_cards))
        return Lookups(customer_of_transaction=customers, card=cards)

    def _account(
        self,
        done: Sequence[Change],
        publications: Sequence[tuple[Publication, Context]],
        bad: Sequence[tuple[Message[Any], BadChange]],
        outcome: MirrorOutcome,
        files: int,
        tombstones: int,
    ) -> None:
        status = self.status
        status.batches += 1
        status.tombstones += tombstones
        status.mirror_applied += outcome.applied
        status.mirror_stale += outcome.stale
        status.lake_files += files
        for change in done:
            status.changes[f"{change.table}:{change.op.value}"] += 1
        for publication, _ in publications:
            status.events[publication.envelope.event_type] += 1
        for _, exc in bad:
            status.dead_lettered[exc.reason] += 1
        if done:
            last = max(done, key=lambda c: c.lsn)
            status.last_lsn = max(status.last_lsn or 0, last.lsn)
            status.last_commit_ms = max(status.last_commit_ms or 0, last.source_ts_ms)
        status.last_batch_at = time.time()

    def _observe(
        self,
        done: Sequence[Change],
        announced: Sequence[Change],
        published_at: float,
        mirrored_at: float,
    ) -> None:
        if self._metrics is None:
            return
        service = self._metrics.service
        for change in done:
            if change.snapshot:
                continue  # a snapshot's commit time is the snapshot's, not the row's
            committed = change.source_ts_ms / 1000
            self._metrics.to_mirror.labels(service, change.table).observe(
                max(mirrored_at - committed, 0.0)
            )
        for change in announced:
            if not change.snapshot:
                self._metrics.to_event.labels(service, change.table).observe(
                    max(published_at - change.source_ts_ms / 1000, 0.0)
                )


def _json(change: Change) -> bytes:
    return orjson.dumps(change.to_json())
