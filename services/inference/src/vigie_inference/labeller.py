"""The labeller: fraud disputes and chargebacks → ``fraud.labels``; the label-delay sweep →
genuine labels for the transactions no fraud label claimed in time.

``fraud.labels`` has one partition (the learner refuses to start otherwise): the learner learns
in offset order, and one partition is one order, so learning is a deterministic function of the
topic. The sweep walks the prediction log's event-time buckets behind the scorer's clock
(its latest ``occurred_at``) and remembers how far it went; a crash re-sweeps at most one bucket,
whose labels carry the same ids and which the learner recognises as duplicates.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from prometheus_client import Counter

from vigie_contracts import Envelope, Event
from vigie_contracts.events.fraud import FraudLabel
from vigie_runtime import Message, Metrics, Producer, get_logger
from vigie_runtime.headers import LABEL_VALUE

from .adapters.predictions import PredictionLog
from .handlers.labels import bucket_of, fraud_label, genuine_due, label_envelope, plan_sweep
from .settings import InferenceSettings

_log = get_logger(__name__)

SWEEPER = "label_delay"


class LabellerMetrics:
    def __init__(self, metrics: Metrics) -> None:
        self.service = metrics.service
        self.labels = Counter(
            "vigie_inference_labels_published",
            "Labels published, by source.",
            ["service", "source"],
            registry=metrics.registry,
        )


async def publish_labels(
    producer: Producer,
    settings: InferenceSettings,
    labels: Sequence[FraudLabel],
    metrics: LabellerMetrics,
    contexts: Sequence[object | None] | None = None,
) -> None:
    sends = []
    for i, label in enumerate(labels):
        env = label_envelope(label, producer=settings.service_name)
        context = contexts[i] if contexts is not None else None
        sends.append(
            producer.send(
                settings.labels_topic,
                env,
                key=label.transaction_id,
                headers=[(LABEL_VALUE, label.label.value.encode())],
                context=context,  # type: ignore[arg-type]  # a Context or None
            )
        )
    await asyncio.gather(*sends)
    for label in labels:
        metrics.labels.labels(metrics.service, label.source.value).inc()


@dataclass
class DisputeHandler:
    """The consumer loop's handler for ``payments.disputes``."""

    settings: InferenceSettings
    log: PredictionLog
    producer: Producer
    metrics: LabellerMetrics

    async def __call__(self, messages: Sequence[Message[Envelope[Event]]]) -> None:
        events = [(m, m.value.payload) for m in messages]
        ids = {getattr(p, "transaction_id", "") for _, p in events}
        stored = await self.log.get(i for i in ids if i)
        labels: list[FraudLabel] = []
        contexts = []
        marks = []
        for message, payload in events:
            prediction = stored.get(getattr(payload, "transaction_id", ""))
            label = fraud_label(payload, prediction.customer_id if prediction else None)
            if label is None:
                continue
            labels.append(label)
            contexts.append(message.context)
            if prediction is not None:
                bucket = bucket_of(prediction.occurred_at, self.settings.bucket)
                marks.append((prediction, bucket, label.labelled_at))
        # marked first: once the label is out, the sweep must already see the transaction taken
        await self.log.mark_fraud(marks)
        if labels:
            await publish_labels(self.producer, self.settings, labels, self.metrics, contexts)


@dataclass
class Sweeper:
    settings: InferenceSettings
    log: PredictionLog
    producer: Producer
    metrics: LabellerMetrics
    clock_name: str

    async def sweep_once(self) -> int:
        """Sweep every due bucket; returns how many genuine labels were published."""
        clock = await self.log.clock(self.clock_name)
        if not clock:
            return 0
        now = max(last for _, last in clock.values())
        first = min(first for first, _ in clock.values())
        swept_until = await self.log.swept_until(SWEEPER)
        plan = plan_sweep(
            now,
            swept_until,
            first,
            width=self.settings.bucket,
            deadline=self.settings.label_deadline,
        )
        published = 0
        for bucket in plan.buckets:
            rows = await self.log.bucket_rows(bucket)
            rows.sort(key=lambda r: (r[2], r[0]))  # event order: a stable stream
            labels = list(genuine_due(rows, deadline=self.settings.label_delay))
            if labels:
                await publish_labels(self.producer, self.settings, labels, self.metrics)
                published += len(labels)
            await self.log.set_swept_until(SWEEPER, bucket + self.settings.bucket)
        return published

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.sweep_once()
            except Exception as exc:
                _log.warning("label sweep failed", error=repr(exc))
            try:
                await asyncio.wait_for(stop.wait(), self.settings.sweep_interval_s)
            except TimeoutError:
                pass


