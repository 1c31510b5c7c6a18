"""The scorer: ``payments.transactions`` (transaction_created) → scores, decisions, fraud_events
and the prediction log.

Per batch: one Redis round trip for every entity of the batch, ``complete()`` point-in-time
with the customer's transactions this scorer consumed as ``pending``, champion + shadow
challengers, then the score and decision events are published (each encoded once, all enqueued
before their acks are awaited together) and the stores' writes handed to the background
``SinkWriter``: publishing does not wait on MongoDB or Cassandra (unless the writer is a full
queue behind); the loop's commits do (the ``SinkGate`` lets an offset through once its
fraud_events document and prediction rows are written).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter as Counter_
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka.errors import KafkaError
from prometheus_client import Counter, Gauge, Histogram

from vigie_contracts import Envelope, Event, encode
from vigie_contracts.events.fraud import DriftSignal
from vigie_contracts.events.payments import TransactionCreated
from vigie_featureset import TxFact, complete, to_us
from vigie_runtime import Message, Metrics, Producer, SinkGate, get_logger, inject
from vigie_runtime.headers import envelope_headers
from vigie_runtime.producer import translate

from .adapters.features import FeatureReader
from .adapters.predictions import PredictionRow
from .adapters.sink import SinkBatch, SinkWriter
from .handlers.drift import DriftMonitor
from .handlers.labels import bucket_of
from .handlers.pending import PendingBuffer
from .handlers.scoring import Scored, envelopes, fraud_event_doc, score
from .serving import ModelSource
from .settings import InferenceSettings

_log = get_logger(__name__)

#: seconds; the brief's budget is 100 ms, the target 20 ms
SCORE_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5)


class ScorerMetrics:
    def __init__(
        self, metrics: Metrics, *, scores_topic: str = "", decisions_topic: str = ""
    ) -> None:
        r, s = metrics.registry, metrics.service
        self.service = s
        self._runtime = metrics
        self._topics = (scores_topic, decisions_topic)
        self.scored = Counter(
            "vigie_inference_scored", "Transactions scored.", ["service", "decision"], registry=r
        )
        self.score_seconds = Histogram(
            "vigie_inference_score_seconds",
            "Redis read + complete + models, per batch of the stream or per REST call.",
            ["service", "path"],
            buckets=SCORE_BUCKETS,
            registry=r,
        )
        self.cold_start = Gauge(
            "vigie_inference_cold_start", "1 while the cold-start rule serves.", ["service"],
            registry=r,
        )
        self.drift = Counter(
            "vigie_inference_drift_signals", "Drift signals published.", ["service", "detector"],
            registry=r,
        )
        self.pending = Gauge(
            "vigie_inference_pending_transactions",
            "Transactions the scorer remembers for customers (features may lag).",
            ["service"],
            registry=r,
        )
        self.sink_seconds = Histogram(
            "vigie_inference_sink_seconds",
            "One background write of fraud_events (mongo), the prediction log (cassandra) or "
            "the sweep clock.",
            ["service", "store"],
            buckets=SCORE_BUCKETS,
            registry=r,
        )
        self.sink_rows = Counter(
            "vigie_inference_sink_rows", "Rows written by the background writer.",
            ["service", "store"], registry=r,
        )

    def count_scored(self, decisions: Sequence[str]) -> None:
        # one labels() lookup per decision value and batch: it costs more than the increment
        for decision, n in Counter_(decisions).items():
            self.scored.labels(self.service, decision).inc(n)

    def sink_timing(self, store: str, seconds: float, rows: int) -> None:
        self.sink_seconds.labels(self.service, store).observe(seconds)
        self.sink_rows.labels(self.service, store).inc(rows)

    def produced(self, n: int) -> None:
        for topic in self._topics:
            if topic:
                self._runtime.count_produced(topic, n)


@dataclass
class Scorer:
    """Scoring shared by the stream and ``POST /score``."""

    settings: InferenceSettings
    features: FeatureReader
    models: ModelSource
    pending: PendingBuffer

    async def score_batch(self, txs: Sequence[TxFact], *, remember: bool) -> list[Scored]:
        states = await self.features.states(txs)
        serving = self.models.serving
        out: list[Scored] = []
        for tx, tx_states in zip(txs, states, strict=True):
            vector = complete(tx, tx_states, self.pending.before(tx))
            if remember:
                self.pending.add(tx)
            out.append(
                score(
                    tx,
                    vector,
                    serving,
                    self.settings.thresholds,
                    top=self.settings.top_features,
                )
            )
        return out


@dataclass
class ScorerHandler:
    """The consumer loop's handler for the transactions topic."""

    settings: InferenceSettings
    scorer: Scorer
    producer: Producer
    sink: SinkWriter
    gate: SinkGate
    metrics: ScorerMetrics
    drift: DriftMonitor

    async def __call__(self, messages: Sequence[Message[Envelope[Event]]]) -> None:
        started = time.perf_counter()
        picked: list[tuple[Message[Envelope[Event]], TxFact]] = []
        seen: set[str] = set()
        for message in messages:
            payload = message.value.payload
            if isinstance(payload, TransactionCreated) and payload.transaction_id not in seen:
                seen.add(payload.transaction_id)
                picked.append((message, TxFact.from_event(payload)))
        if not picked:
            return
        scored = await self.scorer.score_batch([tx for _, tx in picked], remember=True)
        now = datetime.now(UTC)
        service = self.settings.service_name
        producer = self.producer
        acks = []
        for (message, _), result in zip(picked, scored, strict=True):
            # the derived events continue the transaction's trace: its headers are injected
            # once, the envelopes carry the same traceparent and each is encoded once
            trace: list[tuple[str, bytes]] = []
            inject(trace, message.context)
            parent = next((v.decode("ascii") for k, v in trace if k == "traceparent"), None)
            score_env, decision_env = envelopes(
                result, producer=service, now=now, traceparent=parent
            )
            outputs: tuple[tuple[str, str, Envelope[Any]], ...] = (
                (self.settings.scores_topic, result.tx.customer_id, score_env),
                (self.settings.decisions_topic, result.tx.transaction_id, decision_env),
            )
            for topic, key, env in outputs:
                acks.append(
                    await producer.enqueue(
                        topic,
                        encode(env),
                        key=key,
                        headers=[*envelope_headers(env), *trace],
                        trace=False,
                    )
                )
        # all enqueued at once, acks awaited together (the stores are written behind)
        try:
            await asyncio.gather(*acks)
        except (TimeoutError, KafkaError) as exc:
            raise translate(exc) from exc
        self.metrics.produced(len(picked))
        self.metrics.score_seconds.labels(self.metrics.service, "stream").observe(
            time.perf_counter() - started
        )
        await self._after(picked, scored, now)

    async def _after(
        self,
        picked: Sequence[tuple[Message[Any], TxFact]],
        scored: Sequence[Scored],
        now: datetime,
    ) -> None:
        service = self.metrics.service
        version = to_us(now)
        rows: list[PredictionRow] = []
        docs: list[tuple[str, int, dict[str, Any]]] = []
        clock: dict[int, tuple[datetime, datetime]] = {}
        signals: list[DriftSignal] = []
        for (message, tx), result in zip(picked, scored, strict=True):
            rows.append(
                PredictionRow(
                    transaction_id=tx.transaction_id,
                    customer_id=tx.customer_id,
                    occurred_at=tx.occurred_at,
                    scored_at=now,
                    score=result.score,
                    model_name=result.champion.kind,
                    model_version=result.champion.version,
                    features=result.vector,
                    bucket=bucket_of(tx.occurred_at, self.settings.bucket),
                )
            )
            docs.append((tx.transaction_id, version, fraud_event_doc(result, now=now)))
            old = clock.get(message.partition)
            t = tx.occurred_at
            clock[message.partition] = (t, t) if old is None else (min(old[0], t), max(old[1], t))
            signals += self.drift.observe_score(
                result.score,
                result.vector,
                model=result.champion.kind,
                version=result.champion.version,
            )
        self.metrics.count_scored([result.decision.value for result in scored])
        self.metrics.cold_start.labels(service).set(1 if scored[0].champion.cold_start else 0)
        self.metrics.pending.labels(service).set(len(self.scorer.pending))
        await self.sink.put(
            SinkBatch(
                rows=rows,
                docs=docs,
                positions=[(m.topic, m.partition, m.offset) for m, _ in picked],
                clock=clock,
            )
        )
        self.gate.wrote(m for m, _ in picked)
        if signals:
            await publish_drift(self.producer, self.settings, signals, self.metrics)


async def publish_drift(
    producer: Producer,
    settings: InferenceSettings,
    signals: Sequence[DriftSignal],
    metrics: ScorerMetrics | None = None,
) -> None:
    for signal in signals:
        env = Envelope.wrap(signal, producer=settings.service_name, event_time=signal.detected_at)
        await producer.send(settings.drift_topic, env, key=signal.model_name)
        if metrics is not None:
            metrics.drift.labels(metrics.service, signal.detector).inc()
        _log.warning(
            "drift detected",
            detector=signal.detector,
            feature=signal.feature,
            statistic=signal.statistic,
        )


async def poll_models(source: ModelSource, every_s: float, stop: asyncio.Event) -> None:
    """Reload when the registry or a checkpoint moved; a failing read keeps the current set."""
    while not stop.is_set():
        try:
            if await source.refresh():
                _log.info("models reloaded", revision=source.serving.revision)
        except Exception as exc:
            _log.warning("model refresh failed", error=repr(exc))
        try:
            await asyncio.wait_for(stop.wait(), every_s)
        except TimeoutError:
            pass
