"""The batch handler with in-memory fakes: order of the outputs, lookups, dead letters without
PII, and unavailability turned into backpressure (never into dead letters)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
import pytest
from opentelemetry.context import Context

from vigie_ingest_cdc.adapters.mirrors import MirrorOutcome
from vigie_ingest_cdc.handlers import CardRef, MirrorWrite, Pseudonymizer, Publication
from vigie_ingest_cdc.pipeline import Pipeline
from vigie_ingest_cdc.settings import TABLES
from vigie_ingest_cdc.status import Status
from vigie_runtime import Backpressure, Message, Retryable
from vigie_stores import StoreUnavailable
from vigie_stores.lake import RawRecord

TS = "2026-11-26T12:35:27.713559Z"


class Fakes:
    def __init__(self) -> None:
        self.published: list[Publication] = []
        self.mirrored: list[MirrorWrite] = []
        self.lake: list[RawRecord] = []
        self.dead: list[tuple[Message[Any], BaseException]] = []
        self.customers = {"77": "7"}
        self.fail_mirror: Exception | None = None
        self.calls: list[str] = []

    async def publish(self, items: Sequence[tuple[Publication, Context]]) -> None:
        self.calls.append("publish")
        self.published += [p for p, _ in items]

    async def apply(self, writes: Sequence[MirrorWrite]) -> MirrorOutcome:
        self.calls.append("mirror")
        if self.fail_mirror is not None:
            raise self.fail_mirror
        self.mirrored += writes
        return MirrorOutcome(applied=len(writes))

    async def truncate(self, collection: str, version: int) -> int:
        return 0

    async def customers_of(self, transaction_ids: Sequence[str]) -> dict[str, str]:
        return {t: self.customers[t] for t in transaction_ids if t in self.customers}

    async def cards(self, card_ids: Sequence[str]) -> dict[str, CardRef]:
        return {}

    async def write(self, records: Sequence[RawRecord]) -> list[str]:
        self.calls.append("lake")
        self.lake += records
        return ["f"] if records else []


class DeadLetters:
    def __init__(self, fakes: Fakes) -> None:
        self.fakes = fakes

    async def publish(self, failures: Sequence[tuple[Message[Any], BaseException]]) -> None:
        self.fakes.calls.append("dlq")
        self.fakes.dead += failures


def message(topic: str, offset: int, value: bytes | None) -> Message[bytes | None]:
    return Message(topic, 0, offset, 0, b"k", value, (), value)


def change(table: str, op: str, after: dict[str, Any] | None, lsn: int, ts: int = 1000) -> bytes:
    return orjson.dumps(
        {"before": None, "after": after, "op": op, "ts_ms": ts,
         "source": {"table": table, "lsn": lsn, "ts_ms": ts, "snapshot": "false"}}
    )  # fmt: skip


def make() -> tuple[Pipeline, Fakes]:
    fakes = Fakes()
    pipeline = Pipeline(
        tables=TABLES,
        pii=Pseudonymizer(b"c" * 32, b"p" * 32, ("email",)),
        events=fakes,
        mirrors=fakes,
        lake=fakes,
        dead_letters=DeadLetters(fakes),
        status=Status(),
    )
    return pipeline, fakes


def tx(tx_id: int, **over: Any) -> dict[str, Any]:
    return {"id": tx_id, "customer_id": 7, "terminal_id": 1, "merchant_id": 1, "amount": "1.00",
            "currency": "EUR", "status": "pending", "channel": "pos", "occurred_at": TS,
            "created_at": TS, "updated_at": TS, **over}  # fmt: skip


async def test_outputs_in_commit_order_then_mirrors_lake_and_dead_letters() -> None:
    pipeline, fakes = make()
    refund = {"id": 5, "transaction_id": 77, "amount": "1.00", "currency": "EUR",
              "status": "pending", "created_at": TS}  # fmt: skip
    card = {"id": 3, "customer_id": 7, "pan": "4111111111111111", "brand": "visa",
            "email": "a@b.test", "card_type": "debit", "expiry_month": 14}  # fmt: skip
    await pipeline.handle(
        [
            message("cdc.public.transactions", 0, change("transactions", "c", tx(2), 20, 2000)),
            message("cdc.public.transactions", 1, None),  # tombstone
            message("cdc.public.refunds", 0, change("refunds", "c", refund, 15, 1500)),
            message("cdc.public.cards", 0, change("cards", "c", card, 16, 1600)),
            message("cdc.public.transactions", 2, b"\x00 not json 4111111111111111"),
        ]
    )
    assert fakes.calls == ["publish", "mirror", "lake", "dlq"]
    # the refund committed first: published first, keyed by the customer found in the mirror
    assert [p.envelope.event_type for p in fakes.published] == [
        "refund_created",
        "transaction_created",
    ]
    assert fakes.published[0].key == "7"
    assert [w.collection for w in fakes.mirrored] == ["refunds", "transactions"]
    assert len(fakes.lake) == 2
    assert [str(e).split(":")[0] for _, e in fakes.dead] == ["unparseable", "missing_column"]
    for dead, _ in fakes.dead:
        assert dead.raw is not None
        assert b"4111111111111111" not in dead.raw and b"a@b.test" not in dead.raw
    status = pipeline.status.snapshot()
    assert status["tombstones_skipped"] == 1 and status["last_lsn"] == 20


@pytest.mark.parametrize(
    "error", [StoreUnavailable("down", store="mongo"), Retryable("kafka not acking")]
)
async def test_unavailability_is_backpressure_that_grows(error: Exception) -> None:
    pipeline, fakes = make()
    fakes.fail_mirror = error
    batch = [message("cdc.public.transactions", 0, change("transactions", "c", tx(1), 10))]
    delays = []
    for _ in range(3):
        with pytest.raises(Backpressure) as info:
            await pipeline.handle(batch)
        delays.append(info.value.retry_after)
    assert delays == sorted(delays) and delays[0] < delays[-1]
    assert pipeline.status.snapshot()["waiting_for_dependency"] is True
    assert fakes.dead == []
    fakes.fail_mirror = None
    await pipeline.handle(batch)
    assert pipeline.status.snapshot()["waiting_for_dependency"] is False
