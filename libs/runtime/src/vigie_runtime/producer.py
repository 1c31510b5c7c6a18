"""The idempotent producer every service uses, and its transactional variant.

acks=all with idempotence: a retried send never duplicates or reorders a record within a
partition. Records carry no explicit timestamp: Kafka 4 rejects timestamps more than an hour in
the future (``message.timestamp.after.max.ms``) and retention deletes by record timestamp, so a
replayed or late event stamped with its event time would be refused or deleted early. Event
time lives in the envelope.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any, Self

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError, KafkaTimeoutError, MessageSizeTooLargeError
from opentelemetry.context import Context

from vigie_contracts import Envelope, Topic, encode

from .errors import Fatal, Poison, Retryable, VigieRuntimeError
from .headers import envelope_headers
from .metrics import Metrics
from .settings import KafkaSettings
from .tracing import current_traceparent, inject

Key = bytes | str | None


def _key_bytes(key: Key) -> bytes | None:
    return key.encode() if isinstance(key, str) else key


def _name(topic: Topic | str) -> str:
    return topic.name if isinstance(topic, Topic) else topic


def translate(exc: BaseException) -> VigieRuntimeError:
    """aiokafka's errors as the runtime's: a loop knows what to do with these."""
    if isinstance(exc, MessageSizeTooLargeError):
        return Poison(f"record too large for the broker: {exc}")
    if isinstance(exc, KafkaTimeoutError | asyncio.TimeoutError):
        return Retryable(f"Kafka did not acknowledge in time: {exc}")
    if isinstance(exc, KafkaError) and exc.retriable:
        return Retryable(f"transient Kafka error: {exc}")
    return Fatal(f"Kafka producer failed: {exc!r}")


class Producer:
    """Sends envelopes (Avro, with vigie and W3C trace headers) or raw bytes; awaits the ack."""

    def __init__(
        self,
        settings: KafkaSettings,
        *,
        metrics: Metrics | None = None,
        **overrides: Any,
    ) -> None:
        options: dict[str, Any] = {
            **settings.client_options(),
            "acks": "all",
            "enable_idempotence": True,
            "compression_type": settings.compression,
            "linger_ms": settings.linger_ms,
            **overrides,
        }
        self._producer = AIOKafkaProducer(**options)
        self._metrics = metrics

    async def start(self) -> None:
        try:
            await self._producer.start()
        except KafkaError as exc:
            await self._producer.stop()
            raise translate(exc) from exc

    async def stop(self) -> None:
        """Flush what is buffered, then close."""
        await self._producer.stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def flush(self) -> None:
        await self._producer.flush()

    async def send(
        self,
        topic: Topic | str,
        envelope: Envelope[Any],
        *,
        key: Key,
        headers: Sequence[tuple[str, bytes]] = (),
        context: Context | None = None,
        partition: int | None = None,
    ) -> Any:
        """Encode and send one envelope; returns aiokafka's ``RecordMetadata`` once acked.

        ``context`` (default: the current one) is the trace the record continues; the envelope's
        ``traceparent`` is filled from it when empty, for consumers that only read the body.
        """
        if envelope.traceparent is None:
            parent = current_traceparent(context)
            if parent is not None:
                envelope = envelope.model_copy(update={"traceparent": parent})
        all_headers = [*envelope_headers(envelope), *headers]
        return await self.send_raw(
            topic,
            encode(envelope),
            key=key,
            headers=all_headers,
            context=context,
            partition=partition,
        )

    async def send_raw(
        self,
        topic: Topic | str,
        value: bytes | None,
        *,
        key: Key,
        headers: Sequence[tuple[str, bytes]] = (),
        context: Context | None = None,
        partition: int | None = None,
        trace: bool = True,
    ) -> Any:
        """Send bytes as they are; ``trace=False`` keeps the headers exactly as given."""
        future = await self.enqueue(
            topic,
            value,
            key=key,
            headers=headers,
            context=context,
            partition=partition,
            trace=trace,
        )
        try:
            metadata = await future
        except (TimeoutError, KafkaError) as exc:
            raise translate(exc) from exc
        if self._metrics is not None:
            self._metrics.count_produced(_name(topic))
        return metadata

    async def enqueue(
        self,
        topic: Topic | str,
        value: bytes | None,
        *,
        key: Key,
        headers: Sequence[tuple[str, bytes]] = (),
        context: Context | None = None,
        partition: int | None = None,
        trace: bool = True,
    ) -> asyncio.Future[Any]:
        """Append to the producer's buffer; the returned future resolves on the ack. For sending
        many records with one round of waiting (await them all before committing anything)."""
        record_headers = list(headers)
        if trace:
            inject(record_headers, context)
        try:
            future: asyncio.Future[Any] = await self._producer.send(
                _name(topic),
                value,
                key=_key_bytes(key),
                headers=record_headers,
                partition=partition,
            )
        except (TimeoutError, KafkaError) as exc:
            raise translate(exc) from exc
        return future


class TransactionalProducer(Producer):
    """For a consume → produce step that must happen exactly once: the outputs and the input
    offsets commit atomically (consumers of the outputs read with ``read_committed``).

    ``transactional_id`` must be stable per instance (e.g. ``<service>-<pod ordinal>``): a
    restarted instance with the same id fences its zombie predecessor.
    """

    def __init__(
        self,
        settings: KafkaSettings,
        *,
        transactional_id: str,
        metrics: Metrics | None = None,
        **overrides: Any,
    ) -> None:
        super().__init__(settings, metrics=metrics, transactional_id=transactional_id, **overrides)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        """Commits when the block ends, aborts (and re-raises) when it raises."""
        try:
            async with self._producer.transaction():
                yield
        except KafkaError as exc:
            raise translate(exc) from exc

    async def send_offsets(self, offsets: Mapping[TopicPartition, int], group_id: str) -> None:
        """Commit the consumer's ``offsets`` (next offset to read) as part of the transaction."""
        try:
            await self._producer.send_offsets_to_transaction(dict(offsets), group_id)
        except KafkaError as exc:
            raise translate(exc) from exc
