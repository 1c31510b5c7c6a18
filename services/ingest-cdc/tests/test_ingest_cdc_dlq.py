"""Bad input goes to ``dlq.ingest-cdc`` with its reason and without PII; the stream goes on.

Synthetic Debezium envelopes on topics of this test only (``<unique>.public.<table>``), since
PostgreSQL's constraints would refuse most of these rows at the source."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from ingest_cdc_testkit import (
    Watcher,
    bootstrap,
    cdc_topics,
    provision_outputs,
    running_service,
    settings,
)

from vigie_localstack.settings import StackSettings
from vigie_runtime import KafkaSettings, Producer
from vigie_runtime.headers import DLQ_ERROR, DLQ_TOPIC, header
from vigie_runtime.testing import topic_factory

pytestmark = [pytest.mark.integration]
TS = "2026-11-26T12:35:27.713559Z"


def change(table: str, after: dict[str, Any], lsn: int) -> bytes:
    return orjson.dumps(
        {
            "before": None,
            "after": after,
            "source": {"table": table, "lsn": lsn, "txId": 1, "ts_ms": 1_795_696_527_717,
                       "snapshot": "false"},
            "op": "c",
            "ts_ms": 1_795_696_527_937,
        }
    )  # fmt: skip


def tx(tx_id: int, **over: Any) -> dict[str, Any]:
    return {"id": tx_id, "customer_id": 1, "card_id": None, "terminal_id": 1, "merchant_id": 1,
            "amount": "10.00", "currency": "EUR", "status": "pending", "channel": "pos",
            "occurred_at": TS, "created_at": TS, "updated_at": TS, **over}  # fmt: skip


async def test_bad_changes_are_dead_lettered_without_pii_and_the_stream_goes_on(
    stack: StackSettings, unique: str, tmp_path: Path
) -> None:
    prefix = f"dlq-{unique}.public."
    base = 9_000_000_000 + int(unique[:6], 16)
    config = settings(stack, unique, tmp_path / "lake", prefix=prefix)
    await provision_outputs(bootstrap(stack))
    pan = "4000056655665556"
    bad = [
        ("transactions", b'{"garbage" 4000 0566 5566 5556', "unparseable"),
        ("transactions", change("ledgers", {"id": 1}, 10), "unknown_table"),
        ("transactions", change("transactions", tx(base + 1, currency="ZZZ"), 11), "bad_currency"),
        ("transactions", change("transactions", tx(base + 2, amount="-3"), 12), "negative_amount"),
        ("cards", change("cards", {"id": base, "customer_id": 1, "pan": "12ab", "brand": "visa",
                                   "email": "x@y.test"}, 13), "bad_pan"),
    ]  # fmt: skip
    good = change("transactions", tx(base + 3), 14)
    card_with_pan = change(
        "cards",
        {"id": base + 4, "customer_id": 1, "pan": pan, "brand": "visa", "card_type": "credit",
         "expiry_month": 13, "expiry_year": 2030, "status": "active", "updated_at": TS},
        15,
    )  # fmt: skip

    async with topic_factory(bootstrap(stack)) as factory:
        for name in cdc_topics(prefix):
            await factory.create(name, partitions=1)
        dlq = TopicPartition("dlq.ingest-cdc", 0)
        probe = AIOKafkaConsumer(bootstrap_servers=bootstrap(stack), enable_auto_commit=False)
        await probe.start()
        probe.assign([dlq])
        start = (await probe.end_offsets([dlq]))[dlq]
        probe.seek(dlq, start)
        watcher = Watcher(bootstrap(stack), topics=("payments.transactions",))
        await watcher.start()
        try:
            async with (
                Producer(KafkaSettings(bootstrap_servers=bootstrap(stack), linger_ms=0)) as p,
                running_service(config),
            ):
                for table, value, _ in bad:
                    await p.send_raw(f"{prefix}{table}", value, key=b'{"id":1}')
                await p.send_raw(f"{prefix}transactions", None, key=b'{"id":1}')  # tombstone
                await p.send_raw(f"{prefix}cards", card_with_pan, key=b'{"id":2}')
                await p.send_raw(f"{prefix}transactions", good, key=b'{"id":3}')
                created = await watcher.wait_for(
                    lambda s: s.envelope.payload.transaction_id == str(base + 3), timeout_s=60
                )
                assert created[0].envelope.payload.amount_minor == 1000

                letters: list[Any] = []
                deadline = asyncio.get_running_loop().time() + 30
                while len(letters) < len(bad) + 1 and asyncio.get_running_loop().time() < deadline:
                    for records in (await probe.getmany(timeout_ms=500)).values():
                        letters += [
                            r for r in records
                            if (header(r.headers, DLQ_TOPIC) or "").startswith(prefix)
                        ]  # fmt: skip
        finally:
            await watcher.stop()
            await probe.stop()
    reasons = [header(r.headers, DLQ_ERROR) or "" for r in letters]
    expected = [reason for _, _, reason in bad] + ["contract_violation"]
    assert len(letters) == len(expected), reasons
    for want in expected:
        assert any(r.startswith(want) for r in reasons), (want, reasons)
    for record in letters:
        value = record.value or b""
        assert pan.encode() not in value and b"4000 0566 5566 5556" not in value
        assert b"x@y.test" not in value
    # the card refused for its expiry month still went to the DLQ with its PAN tokenised
    refused = next(
        r for r in letters if (header(r.headers, DLQ_ERROR) or "").startswith("contract")
    )
    assert b"card_token" in (refused.value or b"")
