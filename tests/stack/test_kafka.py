"""The local Kafka broker: idempotent and transactional produce, consume, isolation levels."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import TopicPartition

from vigie_localstack.settings import StackSettings

pytestmark = pytest.mark.integration

SETTINGS = StackSettings()
BOOTSTRAP = f"{SETTINGS.host}:{SETTINGS.kafka_port}"


@pytest.fixture
async def topic() -> AsyncIterator[str]:
    """A fresh 3-partition topic per test, deleted afterwards."""
    name = f"vigie-test-kafka-{uuid.uuid4().hex[:12]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=3, replication_factor=1)])
        yield name
        await admin.delete_topics([name])
    finally:
        await admin.close()


async def _consume(topic: str, count: int, isolation_level: str) -> list[tuple[bytes, bytes]]:
    """Read ``count`` records from the start of ``topic``; fail if fewer arrive within 20 s."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=BOOTSTRAP,
        group_id=f"vigie-test-{uuid.uuid4().hex[:12]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        isolation_level=isolation_level,
    )
    await consumer.start()
    records: list[tuple[bytes, bytes]] = []
    try:
        while len(records) < count:
            batch = await consumer.getmany(timeout_ms=20_000)
            if not batch:
                break
            for messages in batch.values():
                records.extend((m.key, m.value) for m in messages)
    finally:
        await consumer.stop()
    return records


async def test_idempotent_producer_round_trip(topic: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, enable_idempotence=True, acks="all")
    await producer.start()
    sent: list[tuple[bytes, bytes]] = []
    try:
        for i in range(30):
            key, value = f"customer-{i % 5}".encode(), f"event-{i}".encode()
            await producer.send(topic, value, key=key)
            sent.append((key, value))
        await producer.flush()
    finally:
        await producer.stop()

    received = await _consume(topic, len(sent), "read_uncommitted")

    assert sorted(received) == sorted(sent)
    # Same key -> same partition -> delivery in send order, the guarantee services rely on.
    for key in {k for k, _ in sent}:
        assert [v for k, v in received if k == key] == [v for k, v in sent if k == key]


async def test_idempotent_producer_keeps_one_partition_per_key(topic: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, enable_idempotence=True, acks="all")
    await producer.start()
    try:
        partitions = {
            (await (await producer.send(topic, b"v", key=b"card-42"))).partition for _ in range(10)
        }
    finally:
        await producer.stop()
    assert len(partitions) == 1


async def test_transactions_commit_visible_abort_hidden(topic: str) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=BOOTSTRAP, transactional_id=f"vigie-test-{uuid.uuid4().hex[:12]}"
    )
    await producer.start()
    try:
        async with producer.transaction():
            for i in range(3):
                await producer.send(topic, f"committed-{i}".encode(), key=b"k")
        await producer.begin_transaction()
        for i in range(2):
            await producer.send(topic, f"aborted-{i}".encode(), key=b"k")
        await producer.abort_transaction()
        # A last committed record proves the consumer read past the aborted transaction.
        async with producer.transaction():
            await producer.send(topic, b"committed-last", key=b"k")
    finally:
        await producer.stop()

    committed = [v for _, v in await _consume(topic, 4, "read_committed")]
    assert committed == [b"committed-0", b"committed-1", b"committed-2", b"committed-last"]

    # The aborted records are in the log: only read_committed hides them.
    everything = [v for _, v in await _consume(topic, 6, "read_uncommitted")]
    assert b"aborted-0" in everything and b"aborted-1" in everything


async def test_read_committed_does_not_see_open_transaction(topic: str) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=BOOTSTRAP, transactional_id=f"vigie-test-{uuid.uuid4().hex[:12]}"
    )
    await producer.start()
    try:
        await producer.begin_transaction()
        metadata = await (await producer.send(topic, b"pending", key=b"k"))
        await producer.flush()
        consumer = AIOKafkaConsumer(
            bootstrap_servers=BOOTSTRAP, isolation_level="read_committed",
            enable_auto_commit=False,
        )
        await consumer.start()
        try:
            tp = TopicPartition(topic, metadata.partition)
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            assert await consumer.getmany(tp, timeout_ms=2_000) == {}
            await producer.commit_transaction()
            seen: list[bytes] = []
            for _ in range(10):  # up to ~10 s for the commit marker to move the stable offset
                batch = await consumer.getmany(tp, timeout_ms=1_000)
                seen.extend(m.value for m in batch.get(tp, []))
                if seen:
                    break
            assert seen == [b"pending"]
        finally:
            await consumer.stop()
    finally:
        await producer.stop()
