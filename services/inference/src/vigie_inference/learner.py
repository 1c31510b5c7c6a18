"""The learner: ``fraud.labels`` → test-then-train on the prediction log's snapshots → models,
checkpointed to GridFS with the label-stream positions they have learned up to.

The consumer loop's commits are gated on the checkpoint (``gate``): the group's committed
offsets never pass what a checkpoint holds, and labels below the checkpoint's positions are
skipped, so a restart (even after ``kill -9``) resumes exactly where the checkpoint is. A
checkpoint is taken every ``checkpoint_every_labels`` labels or ``checkpoint_every_s`` seconds,
and before the final commit of a shutdown or a revoke.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
from aiokafka import TopicPartition
from prometheus_client import Counter, Gauge

from vigie_contracts import Envelope, Event
from vigie_contracts.events.fraud import FraudLabel, LabelValue
from vigie_evaluation import DayMetrics, ScoredTransactions, daily_metrics
from vigie_runtime import Message, Metrics, Producer, get_logger

from .adapters.models import Checkpoint, ModelRegistry
from .adapters.predictions import PredictionLog, PrequentialRow
from .handlers.drift import DriftMonitor
from .handlers.learning import LabelIn, LearnerCore
from .handlers.lifecycle import promote, rule_winner
from .scorer import publish_drift
from .serving import Kinds, fresh, restore
from .settings import InferenceSettings

_log = get_logger(__name__)


class LearnerMetrics:
    def __init__(self, metrics: Metrics) -> None:
        r, s = metrics.registry, metrics.service
        self.service = s
        self.labels = Counter(
            "vigie_inference_labels",
            "Labels consumed, by outcome (learned, duplicate, replayed, missing).",
            ["service", "outcome"],
            registry=r,
        )
        self.checkpoints = Counter(
            "vigie_inference_checkpoints", "Checkpoints written.", ["service"], registry=r
        )
        self.quality = Gauge(
            "vigie_inference_prequential",
            "Prequential quality of each model on the latest complete day.",
            ["service", "model", "metric"],
            registry=r,
        )


def day_metrics(rows: Sequence[PrequentialRow], kind: str, top_k: int = 100) -> DayMetrics | None:
    """One day's prequential figures of one model (evaluation.daily_metrics)."""
    usable = [r for r in rows if kind in r.scores]
    if not usable:
        return None
    table = ScoredTransactions(
        transaction_id=np.arange(len(usable), dtype=np.int64),
        time=np.asarray([r.occurred_at.timestamp() for r in usable], dtype=np.float64),
        customer=np.asarray([r.customer_id for r in usable]),
        score=np.asarray([r.scores[kind] for r in usable], dtype=np.float64),
        fraud=np.asarray([r.fraud for r in usable], dtype=np.bool_),
        label_time=np.asarray([r.labelled_at.timestamp() for r in usable], dtype=np.float64),
    )
    found = daily_metrics(table, top_k)
    return found[0] if found else None


def metrics_doc(m: DayMetrics) -> dict[str, Any]:
    def num(v: float) -> float | None:
        return None if v != v else round(float(v), 6)  # NaN (one class) → null

    return {
        "day": m.day.isoformat(),
        "transactions": m.n_tx,
        "frauds": m.n_fraud,
        "auc_roc": num(m.auc_roc),
        "average_precision": num(m.average_precision),
        "card_precision_at_100": num(m.card_precision),
    }


@dataclass
class Learner:
    settings: InferenceSettings
    kinds: Kinds
    registry: ModelRegistry
    log: PredictionLog
    producer: Producer
    metrics: LearnerMetrics
    drift: DriftMonitor
    core: LearnerCore | None = None
    seq: int = 0
    since_checkpoint: int = 0
    last_checkpoint: float = 0.0
    #: the newest event day seen in labels (metrics are exported for the day before it)
    latest_day: date | None = None

    def __post_init__(self) -> None:
        self._lock = asyncio.Lock()
        #: the positions of the newest checkpoint (what commits may reach)
        self._saved_positions: dict[str, int] = {}

    async def start(self) -> None:
        """Restore from the newest checkpoint, or start fresh models."""
        latest = await self.registry.latest()
        self.core = await self._restore(latest)
        self.seq = latest.seq if latest is not None else 0
        self._saved_positions = dict(latest.positions) if latest is not None else {}
        self.last_checkpoint = time.monotonic()
        _log.info(
            "learner started",
            checkpoint=self.seq,
            learned=self.core.learned,
            positions=self.core.positions,
        )

    async def _restore(self, latest: Checkpoint | None) -> LearnerCore:
        models = {}
        for kind in self.kinds.all:
            if latest is not None and kind in latest.files:
                data = await self.registry.load(latest, kind)
                models[kind] = restore(kind, data)
            else:
                models[kind] = fresh(kind, self.kinds.seed)
        return LearnerCore(
            models,
            self.kinds.champion,
            positions=latest.positions if latest else {},
            learned=latest.learned if latest else 0,
            learned_frauds=latest.learned_frauds if latest else 0,
        )

    # -- the consumer loop's side ---------------------------------------------------------------

    async def __call__(self, messages: Sequence[Message[Envelope[Event]]]) -> None:
        core = self.core
        if core is None:
            raise RuntimeError("Learner.start() was not awaited")
        labels: list[LabelIn] = []
        for m in messages:
            payload = m.value.payload
            if isinstance(payload, FraudLabel):
                labels.append(
                    LabelIn(
                        m.topic,
                        m.partition,
                        m.offset,
                        payload.transaction_id,
                        payload.label == LabelValue.FRAUD,
                        payload.labelled_at,
                    )
                )
        async with self._lock:
            latest = await self.registry.latest()
            if latest is not None and latest.seq != self.seq:
                # another instance checkpointed (a rolling update handed the partition over):
                # continue from its state, never from ours
                _log.info("newer checkpoint found: reloading", checkpoint=latest.seq)
                self.core = core = await self._restore(latest)
                self.seq = latest.seq
                self._saved_positions = dict(latest.positions)
                self.since_checkpoint = 0
            stored = await self.log.get(label.transaction_id for label in labels)
            registry = await self.registry.read_registry(self.kinds.champion)
            core.champion = registry.champion
            outcome = core.learn(labels, stored)
            # positions of records that were not labels (other event types) move too
            for m in messages:
                stream = f"{m.topic}:{m.partition}"
                core.positions[stream] = max(core.positions.get(stream, 0), m.offset + 1)
            await asyncio.gather(
                self.log.set_learned(outcome.learned),
                self.log.write_prequential(outcome.prequential),
                self.log.correct_prequential(outcome.corrections),
            )
            s = self.metrics.service
            self.metrics.labels.labels(s, "learned").inc(len(outcome.learned))
            self.metrics.labels.labels(s, "duplicate").inc(outcome.duplicates)
            self.metrics.labels.labels(s, "replayed").inc(outcome.replayed)
            self.metrics.labels.labels(s, "missing").inc(outcome.missing)
            self.since_checkpoint += len(outcome.learned)
            for row in outcome.prequential:
                d = row.occurred_at.date()
                if self.latest_day is None or d > self.latest_day:
                    self.latest_day = d
            signals = []
            review = self.settings.thresholds.review
            for champion_score, fraud in outcome.champion_scores:
                signals += self.drift.observe_error(
                    1.0 if (champion_score >= review) != fraud else 0.0,
                    model=core.champion,
                    version=f"{core.champion}@{self.seq}",
                )
            if self._due():
                await self._checkpoint()
        if signals:
            await publish_drift(self.producer, self.settings, signals)

    def gate(self, requested: Mapping[TopicPartition, int]) -> dict[TopicPartition, int]:
        """Commits go no further than the newest checkpoint."""
        saved = self._saved_positions
        return {tp: saved.get(f"{tp.topic}:{tp.partition}", 0) for tp in requested}

    def _due(self) -> bool:
        if self.since_checkpoint == 0:
            return False
        return (
            self.since_checkpoint >= self.settings.checkpoint_every_labels
            or time.monotonic() - self.last_checkpoint >= self.settings.checkpoint_every_s
        )

    async def checkpoint(self) -> Checkpoint | None:
        """Checkpoint now if anything was learned since the last one (shutdown, revoke, timer)."""
        async with self._lock:
            if self.core is None:
                return None
            moved = self.core.positions != self._saved_positions
            if self.since_checkpoint == 0 and not moved:
                return None
            return await self._checkpoint()

    async def _checkpoint(self) -> Checkpoint:
        core = self.core
        assert core is not None  # noqa: S101 - started
        self.seq += 1
        metrics = await self._metrics_summary()
        saved = await self.registry.save(
            self.seq,
            core.states(),
            positions=core.positions,
            learned=core.learned,
            created_at=datetime.now(UTC),
            metrics=metrics,
            learned_frauds=core.learned_frauds,
        )
        self._saved_positions = dict(core.positions)
        self.since_checkpoint = 0
        self.last_checkpoint = time.monotonic()
        self.metrics.checkpoints.labels(self.metrics.service).inc()
        await self._maybe_promote(metrics)
        registry = await self.registry.read_registry(self.kinds.champion)
        protect = {c.pinned for c in registry.history if c.pinned is not None}
        if registry.pinned is not None:
            protect.add(registry.pinned)
        await self.registry.prune(self.settings.checkpoints_kept, protect)
        _log.info("checkpoint", checkpoint=self.seq, learned=core.learned)
        return saved

    async def _metrics_summary(self) -> dict[str, Any]:
        """Each model's figures on the latest complete day (exported as gauges too)."""
        if self.latest_day is None:
            return {}
        day = self.latest_day - timedelta(days=1)
        rows = await self.log.prequential_day(day)
        out: dict[str, Any] = {"day": day.isoformat(), "models": {}}
        for kind in self.kinds.all:
            m = day_metrics(rows, kind)
            if m is None:
                continue
            doc = metrics_doc(m)
            out["models"][kind] = doc
            for name in ("auc_roc", "average_precision", "card_precision_at_100"):
                value = doc[name]
                if value is not None:
                    self.metrics.quality.labels(self.metrics.service, kind, name).set(value)
        return out

    async def _maybe_promote(self, metrics: Mapping[str, Any]) -> None:
        rule = self.settings.promotion
        if not rule.enabled or not metrics.get("models"):
            return
        registry = await self.registry.read_registry(self.kinds.champion)
        # the figures of the last ``days`` days, each day once (from its newest checkpoint)
        by_day: dict[str, dict[str, Any]] = {}
        for cp in await self.registry.versions(limit=1000):
            day = cp.metrics.get("day")
            if day is not None and day not in by_day:
                by_day[day] = cp.metrics.get("models", {})
        days = sorted(by_day)[-rule.days :]
        ap: dict[str, list[float]] = {}
        labels = 0
        for day in days:
            for kind, doc in by_day[day].items():
                if doc.get("average_precision") is not None:
                    ap.setdefault(kind, []).append(doc["average_precision"])
            labels += int(by_day[day].get(registry.champion, {}).get("transactions", 0))
        mean_ap = {k: sum(v) / len(v) for k, v in ap.items() if v}
        winner = rule_winner(
            registry.champion, mean_ap, labels, margin=rule.margin, min_labels=rule.min_labels
        )
        if winner is not None:
            updated = promote(
                registry,
                winner,
                self.kinds.all,
                at=datetime.now(UTC),
                reason=f"rule: average precision {mean_ap[winner]:.4f} vs "
                f"{mean_ap[registry.champion]:.4f}",
            )
            if await self.registry.write_registry(updated):
                _log.info("champion promoted by rule", champion=winner)


async def checkpoint_timer(learner: Learner, stop: asyncio.Event) -> None:
    """Checkpoints an idle learner that has learned something since its last checkpoint."""
    every = learner.settings.checkpoint_every_s
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), every)
        except TimeoutError:
            pass
        if time.monotonic() - learner.last_checkpoint >= every:
            try:
                await learner.checkpoint()
            except Exception as exc:
                _log.warning("timed checkpoint failed", error=repr(exc))
