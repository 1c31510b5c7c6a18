"""Dead letters: publish a record that cannot be processed, list them, replay them.

A dead letter is the original record (key, value and headers verbatim) on ``dlq.<service>``,
with ``vigie.dlq.*`` headers saying why and where it failed. Replay sends it back to its
original topic with its original key and headers, plus ``vigie.dlq.replayed_from``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from vigie_contracts.topics import dead_letter

from . import headers as h
from .errors import Fatal
from .messages import Message
from .metrics import Metrics
from .producer import Producer
from .settings import KafkaSettings
from .topics import partitions_of


class DeadLetterPublisher:
    def __init__(self, producer: Producer, service: str, metrics: Metrics | None = None) -> None:
        self.topic = dead_letter(service)
        self._producer = producer
        self._service = service
        self._metrics = metrics

    async def publish(self, failures: Sequence[tuple[Message[Any], BaseException]]) -> None:
        """Send every failure and wait for all acks: only then may their offsets be committed."""
        futures = []
        for message, error in failures:
            record_headers = h.dead_letter_headers(
                original=message.headers,
                error=error,
                topic=message.topic,
                partition=message.partition,
                offset=message.offset,
                timestamp=message.timestamp,
                service=self._service,
            )
            # trace=False: the original traceparent stays, so the dead letter is found from
            # the trace of the event that failed
            futures.append(
                await self._producer.enqueue(
                    self.topic, message.raw, key=message.key, headers=record_headers, trace=False
                )
            )
        try:
            await asyncio.gather(*futures)
        except Exception as exc:
            # nothing is committed; the batch is re-read after a restart
            raise Fatal(f"dead-letter topic {self.topic.name} refused a record: {exc!r}") from exc
        if self._metrics is not None:
            for message, error in failures:
                self._metrics.count_dead_lettered(message.topic, h.error_type_of(error))
            self._metrics.count_produced(self.topic.name, len(failures))


@dataclass(frozen=True, slots=True)
class DeadLetter:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]

    @property
    def origin_topic(self) -> str | None:
        return h.header(self.headers, h.DLQ_TOPIC)

    @property
    def error(self) -> str:
        return h.header(self.headers, h.DLQ_ERROR) or ""

    @property
    def error_type(self) -> str:
        return h.header(self.headers, h.DLQ_ERROR_TYPE) or ""

    def origin(self) -> str:
        return ":".join(
            h.header(self.headers, name) or "?"
            for name in (h.DLQ_TOPIC, h.DLQ_PARTITION, h.DLQ_OFFSET)
        )


async def read_dead_letters(
    settings: KafkaSettings,
    service: str,
    *,
    from_offset: int = 0,
    topic_filter: str | None = None,
    limit: int | None = None,
) -> AsyncIterator[DeadLetter]:
    """The service's dead letters from ``from_offset`` up to the end of the topic *as it was
    when the read started* (dead letters arriving meanwhile wait for the next run)."""
    name = dead_letter(service).name
    # no group: listing or replaying must not move any committed position
    consumer = AIOKafkaConsumer(
        **settings.client_options(), enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        tps = [TopicPartition(name, p) for p in await partitions_of(settings, name)]
        if not tps:
            return
        consumer.assign(tps)
        ends: dict[TopicPartition, int] = await consumer.end_offsets(tps)
        starts: dict[TopicPartition, int] = await consumer.beginning_offsets(tps)
        for tp in tps:
            consumer.seek(tp, max(from_offset, starts[tp]))
        remaining = {tp for tp in tps if max(from_offset, starts[tp]) < ends[tp]}
        yielded = 0
        while remaining:
            batches = await consumer.getmany(*remaining, timeout_ms=1000)
            for tp, records in batches.items():
                for record in records:
                    if record.offset >= ends[tp]:
                        remaining.discard(tp)
                        break
                    letter = DeadLetter(
                        record.partition,
                        record.offset,
                        record.key,
                        record.value,
                        tuple(record.headers or ()),
                    )
                    if topic_filter is None or letter.origin_topic == topic_filter:
                        yield letter
                        yielded += 1
                        if limit is not None and yielded >= limit:
                            return
                    if record.offset + 1 >= ends[tp]:
                        remaining.discard(tp)
    finally:
        await consumer.stop()


async def replay(
    settings: KafkaSettings,
    service: str,
    producer: Producer,
    *,
    from_offset: int = 0,
    topic_filter: str | None = None,
    limit: int | None = None,
) -> list[DeadLetter]:
    """Send dead letters back to their original topics; returns those replayed (all acked)."""
    replayed: list[DeadLetter] = []
    futures = []
    dlq_name = dead_letter(service).name
    async for letter in read_dead_letters(
        settings, service, from_offset=from_offset, topic_filter=topic_filter, limit=limit
    ):
        origin = letter.origin_topic
        if origin is None:
            continue  # not written by the runtime: nowhere to send it back to
        position = f"{dlq_name}:{letter.partition}:{letter.offset}"
        futures.append(
            await producer.enqueue(
                origin,
                letter.value,
                key=letter.key,
                headers=h.replay_headers(letter.headers, position),
                trace=False,
            )
        )
        replayed.append(letter)
    await asyncio.gather(*futures)
    return replayed
