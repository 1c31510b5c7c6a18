"""The worker against the real Kafka and Redis: undecodable records on source topics go, verbatim,
to the service's dead-letter topic with the runtime's headers, and the worker goes on; an agent
that crashes stops the worker (faust alone would restart the agent and look healthy)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import features_testkit as kit
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from vigie_contracts.events import RefundCreated, TransactionCreated
from vigie_contracts.events.features import EntityType
from vigie_contracts.events.payments import Channel, TransactionStatus
from vigie_features.settings import FeaturesSettings
from vigie_featureset import decode_fields, entity_key
from vigie_localstack.settings import StackSettings
from vigie_runtime import KafkaSettings, Producer
from vigie_runtime import headers as h
from vigie_runtime.dlq import read_dead_letters
from vigie_stores.redis import RedisStore
from vigie_stores.testing import throwaway_redis

pytestmark = pytest.mark.integration

T0 = datetime(2024, 3, 1, 12, tzinfo=UTC)


def _tx(n: int, customer: str) -> TransactionCreated:
    return TransactionCreated(
        transaction_id=f"tx{n}", customer_id=customer, card_token=None, terminal_id="T1",
        merchant_id="M1", amount_minor=1000, currency="EUR",
        status=TransactionStatus.AUTHORIZED, channel=Channel.POS,
        occurred_at=T0 + timedelta(minutes=n),
    )


async def _customer(store: RedisStore, customer: str) -> dict[str, float] | None:
    fields = await store.read_hash(entity_key(EntityType.CUSTOMER, customer))
    if fields is None:
        return None
    return decode_fields(fields).views["customer_windows"]


def _start(s: FeaturesSettings, log: Path) -> subprocess.Popen[bytes]:
    """The worker (its customers agent dies on customer CRASH) in a process of its own."""
    env = {**os.environ, **kit.env_of(s), "PYTHONPATH": str(Path(__file__).parent)}
    with log.open("ab") as out:
        return subprocess.Popen(  # noqa: S603 - our own test helper
            [sys.executable, str(Path(__file__).parent / "features_crashing_worker.py")],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def test_dead_letters_then_a_crashed_agent_stops_the_worker(
    stack: StackSettings, unique: str, tmp_path: Path
) -> None:
    base = kit.settings(stack, unique, tmp_path / "state")
    service = f"features-{unique}"
    s = base.model_copy(
        update={"observability": base.observability.model_copy(update={"service_name": service})}
    )
    await kit.create_topics(s)
    admin = AIOKafkaAdminClient(bootstrap_servers=s.kafka.bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(f"dlq.{service}", 1, 1)])
    finally:
        await admin.close()
    raw = AIOKafkaProducer(bootstrap_servers=s.kafka.bootstrap_servers, acks="all")
    await raw.start()
    log = tmp_path / "worker.log"
    worker = _start(s, log)
    try:
        async with (
            throwaway_redis(s.redis) as store,
            Producer(KafkaSettings(bootstrap_servers=s.kafka.bootstrap_servers)) as producer,
        ):
            # each bad record is followed, on its partition (same key), by good events
            bad = [
                (s.transactions_topic, b"\x00not an envelope"),  # the customers agent
                (s.refunds_topic, b"{not avro}"),  # the routing agent
            ]
            sent: dict[str, Any] = {}
            for topic, value in bad:
                sent[topic] = await raw.send_and_wait(
                    topic, value, key=b"C1", headers=[("x-origin", b"test")]
                )
            tx = _tx(1, "C1")
            refund = RefundCreated(
                refund_id="rf1", transaction_id="tx1", customer_id="C1", amount_minor=1000,
                currency="EUR", status="succeeded", created_at=T0 + timedelta(hours=1),
            )
            await kit.produce(producer, [(s.transactions_topic, "C1", tx)])
            await kit.produce(producer, [(s.refunds_topic, "C1", refund)])

            async def applied() -> bool:
                views = await _customer(store, "C1")
                return views is not None and views["customer_refund_ratio_30d"] > 0

            await kit.wait_until(applied, timeout_s=90)
            views = await _customer(store, "C1")
            assert views is not None and views["customer_nb_tx_1d"] == 1.0
            await kit.wait_until(lambda: kit.caught_up(s), timeout_s=90)
            letters = [x async for x in read_dead_letters(s.kafka, service)]
            by_topic = {x.origin_topic: x for x in letters}
            assert len(letters) == 2 and set(by_topic) == {topic for topic, _ in bad}
            for topic, value in bad:
                letter = by_topic[topic]
                assert letter.value == value and letter.key == b"C1"
                assert h.header(letter.headers, "x-origin") == "test"  # original headers kept
                assert h.header(letter.headers, h.DLQ_SERVICE) == service
                assert h.header(letter.headers, h.DLQ_OFFSET) == str(sent[topic].offset)
                assert h.header(letter.headers, h.DLQ_PARTITION) == str(sent[topic].partition)
                assert letter.error and letter.error_type

            # an agent dying of an unexpected error: the process exits 1 (faust alone would
            # restart the agent and the process would look alive)
            assert worker.poll() is None
            await kit.produce(producer, [(s.transactions_topic, "CRASH", _tx(2, "CRASH"))])

            async def exited() -> bool:
                return worker.poll() is not None

            try:
                await kit.wait_until(exited, timeout_s=60, every_s=0.2)
            except AssertionError:
                raise AssertionError(log.read_text()[-3000:]) from None
            assert worker.returncode == 1, log.read_text()[-3000:]
            assert "agent crashed" in log.read_text()
            assert await _customer(store, "CRASH") is None
    finally:
        worker.kill()
        worker.wait(10)
        await raw.stop()
        await kit.delete_topics(s, unique)
