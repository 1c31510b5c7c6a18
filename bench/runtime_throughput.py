"""Throughput of the runtime's consumer loop against a bare aiokafka loop, same topic, same run.

    .venv/bin/python bench/runtime_throughput.py --messages 200000 [--avro] [--batch 500]

Produces N small Avro envelopes to a fresh topic, then consumes all of them three (or two) times,
each with a new consumer group:
  (a) bare aiokafka: getmany + commit per batch, nothing else;
  (b) vigie_runtime.ConsumerLoop with the raw decoder and a no-op handler (spans, metrics,
      offsets bookkeeping, commit per batch);
  (c) with --avro: the same loop decoding and validating every envelope (contracts' Avro).
Rates are measured from the first record received to the last, so group joins do not count.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from vigie_contracts import Envelope, encode
from vigie_contracts.events import ServiceHeartbeat
from vigie_runtime import (
    ConsumerLoop,
    KafkaSettings,
    Message,
    ObservabilitySettings,
    Producer,
    ServiceSettings,
    configure_logging,
    envelope_decoder,
    raw_decoder,
)


async def produce(bootstrap: str, topic: str, n: int, partitions: int) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()
    now = datetime.now(UTC)
    payload = ServiceHeartbeat(service="bench", instance="1", version="1", ready=True, sent_at=now)
    value = encode(Envelope.wrap(payload, producer="bench", event_time=now))
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=256 * 1024, acks=1
    )
    await producer.start()
    try:
        futures = [await producer.send(topic, value, key=str(i % 1000).encode()) for i in range(n)]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return len(value)


async def bare(bootstrap: str, topic: str, n: int, batch: int) -> float:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"bench-bare-{uuid.uuid4().hex[:8]}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    seen, first = 0, 0.0
    try:
        while seen < n:
            batches = await consumer.getmany(timeout_ms=200, max_records=batch)
            if not batches:
                continue
            if not first:
                first = time.perf_counter()
            seen += sum(len(records) for records in batches.values())
            await consumer.commit()
        return seen / (time.perf_counter() - first)
    finally:
        await consumer.stop()


async def runtime(bootstrap: str, topic: str, n: int, batch: int, avro: bool) -> float:
    settings = ServiceSettings(
        kafka=KafkaSettings(
            bootstrap_servers=bootstrap,
            batch_max_records=batch,
            group_id=f"bench-runtime-{uuid.uuid4().hex[:8]}",
        ),
        observability=ObservabilitySettings(service_name="bench"),
    )
    state = {"seen": 0, "first": 0.0, "last": 0.0}
    done = asyncio.Event()

    async def handler(messages: Sequence[Message[Any]]) -> None:
        if not state["first"]:
            state["first"] = time.perf_counter()
        state["seen"] += len(messages)
        if state["seen"] >= n:
            state["last"] = time.perf_counter()
            done.set()

    async with Producer(settings.kafka) as producer:
        loop: ConsumerLoop[Any] = ConsumerLoop(
            settings,
            topics=[topic],
            handler=handler,
            producer=producer,
            decoder=envelope_decoder if avro else raw_decoder,
        )
        task = asyncio.create_task(loop.run())
        await done.wait()
        loop.stop()
        await task
    return state["seen"] / (time.perf_counter() - state["first"])


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--avro", action="store_true", help="also run the loop decoding Avro")
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    args = parser.parse_args()
    configure_logging(ObservabilitySettings(service_name="bench", log_level="warning"))
    topic = f"bench-runtime-{uuid.uuid4().hex[:8]}"
    started = time.perf_counter()
    size = await produce(args.bootstrap, topic, args.messages, args.partitions)
    print(f"produced {args.messages} x {size} B to {topic} in {time.perf_counter() - started:.1f}s")
    try:
        bare_rate = await bare(args.bootstrap, topic, args.messages, args.batch)
        print(f"(a) bare aiokafka getmany+commit : {bare_rate:10,.0f} msg/s")
        raw_rate = await runtime(args.bootstrap, topic, args.messages, args.batch, avro=False)
        print(
            f"(b) runtime loop, raw, no-op     : {raw_rate:10,.0f} msg/s "
            f"(ratio b/a = {raw_rate / bare_rate:.2f})"
        )
        if args.avro:
            avro_rate = await runtime(args.bootstrap, topic, args.messages, args.batch, avro=True)
            print(
                f"(c) runtime loop, Avro decoded   : {avro_rate:10,.0f} msg/s "
                f"(ratio c/a = {avro_rate / bare_rate:.2f})"
            )
    finally:
        admin = AIOKafkaAdminClient(bootstrap_servers=args.bootstrap)
        await admin.start()
        try:
            await admin.delete_topics([topic])
        finally:
            await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
