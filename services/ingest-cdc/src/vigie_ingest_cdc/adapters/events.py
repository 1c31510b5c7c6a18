"""Domain events to their topics: every record of a batch enqueued, then all acks awaited."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from opentelemetry.context import Context

from vigie_contracts import encode
from vigie_runtime import Metrics, Producer
from vigie_runtime.headers import envelope_headers
from vigie_runtime.producer import translate
from vigie_runtime.tracing import current_traceparent

from ..handlers import Publication


class EventPublisher:
    def __init__(self, producer: Producer, metrics: Metrics | None = None) -> None:
        self._producer = producer
        self._metrics = metrics

    async def publish(self, items: Sequence[tuple[Publication, Context]]) -> None:
        """Send in order (one key's records keep their order on its partition); returns once
        Kafka acknowledged all of them. Raises the runtime's ``Retryable`` / ``Fatal``."""
        futures = []
        for publication, context in items:
            envelope = publication.envelope
            parent = current_traceparent(context)
            if parent is not None and envelope.traceparent is None:
                envelope = envelope.model_copy(update={"traceparent": parent})
            futures.append(
                await self._producer.enqueue(
                    publication.topic,
                    encode(envelope),
                    key=publication.key,
                    headers=envelope_headers(envelope),
                    context=context,
                )
            )
        if not futures:
            return

        try:
            await asyncio.gather(*futures)
        except Exception as exc:
            raise translate(exc) from exc
        if self._metrics is not None:
            counts: dict[str, int] = {}
            for publication, _ in items:
                counts[publication.topic.name] = counts.get(publication.topic.name, 0) + 1
            for topic, count in counts.items():
                self._metrics.count_produced(topic, count)
