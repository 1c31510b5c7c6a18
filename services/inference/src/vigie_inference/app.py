"""Wiring only: the scorer, learner and labeller loops (as ``role`` says), their stores, the
background tasks (model polling, the stores' writer, the label sweep, the checkpoint timer) and
the REST API.

Each loop has its own consumer group (``<group>-scorer``, ``-learner``, ``-labeller``): they read
different topics and scale differently — the scorer with the transactions' partitions, the
learner as a single instance (one model state, one label order).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from vigie_runtime import (
    ConsumerLoop,
    ErrorKind,
    Runtime,
    ServiceSettings,
    SinkGate,
    Wiring,
    classify,
    get_logger,
    partitions_of,
)
from vigie_stores import StoreConflict, StoreError
from vigie_stores.cassandra import CassandraStore
from vigie_stores.mongo import MongoStore
from vigie_stores.redis import RedisStore

from . import api as rest
from .adapters.features import FeatureReader
from .adapters.fraud_events import FraudEvents
from .adapters.models import ModelRegistry
from .adapters.predictions import PredictionLog
from .adapters.sink import SinkWriter
from .handlers.drift import DriftMonitor
from .handlers.errors import BadFeatures
from .handlers.learning import check_label_partitions
from .handlers.pending import PendingBuffer
from .labeller import DisputeHandler, LabellerMetrics, Sweeper
from .learner import Learner, LearnerMetrics, checkpoint_timer
from .scorer import Scorer, ScorerHandler, ScorerMetrics, poll_models
from .serving import Kinds, ModelSource
from .settings import InferenceSettings

_log = get_logger(__name__)

#: the scorer's clock in the prediction log (the sweep reads it)
CLOCK = "scorer"


def classify_error(exc: BaseException) -> ErrorKind:
    if isinstance(exc, StoreError):
        if exc.retryable:
            return ErrorKind.RETRY
        if isinstance(exc, StoreConflict) or "cannot bind" in str(exc):
            return ErrorKind.POISON
        return ErrorKind.FATAL
    if isinstance(exc, BadFeatures):
        return ErrorKind.POISON
    return classify(exc)


def _group(settings: InferenceSettings, part: str) -> ServiceSettings:
    kafka = settings.kafka.model_copy(update={"group_id": f"{settings.group_id}-{part}"})
    return settings.model_copy(update={"kafka": kafka})


@contextlib.asynccontextmanager
async def background(
    name: str, run: Callable[[asyncio.Event], Coroutine[Any, Any, None]]
) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(run(stop), name=name)
    try:
        yield
    finally:
        stop.set()
        try:
            await asyncio.wait_for(task, 30)
        except Exception as exc:
            _log.warning("background task ended badly", task=name, error=repr(exc))


async def wire(runtime: Runtime) -> Wiring:
    settings = runtime.settings
    assert isinstance(settings, InferenceSettings)  # noqa: S101 - run_service passes ours back
    role = settings.role
    stack = runtime.stack
    scoring = role in ("all", "scorer")
    learning = role in ("all", "learner")
    labelling = role in ("all", "labeller")

    cassandra = await stack.enter_async_context(await CassandraStore.open(settings.cassandra))
    log = PredictionLog(cassandra, settings.keyspace, settings.prediction_ttl)
    await log.ensure_schema(settings.replication_factor)
    mongo = await stack.enter_async_context(await MongoStore.open(settings.mongo))
    registry = ModelRegistry(mongo, settings.models_bucket)
    kinds = Kinds.of(settings.champion, settings.challengers, settings.model_seed)
    source = ModelSource(
        registry,
        kinds,
        min_labels=settings.min_labels_to_serve,
        min_frauds=settings.min_frauds_to_serve,
    )
    await source.refresh()

    loops: list[ConsumerLoop[Any]] = []
    readiness: dict[str, Any] = {}
    common: dict[str, Any] = {
        "producer": runtime.producer,
        "metrics": runtime.metrics,
        "tracer": runtime.tracer,
        "classifier": classify_error,
    }

    async def cassandra_ready() -> bool:
        await cassandra.ping()
        return True

    async def mongo_ready() -> bool:
        await mongo.ping()
        return True

    readiness["cassandra"] = cassandra_ready
    readiness["mongo"] = mongo_ready

    scorer: Scorer | None = None
    scorer_metrics: ScorerMetrics | None = None
    if scoring:
        redis = await stack.enter_async_context(await RedisStore.open(settings.redis))

        async def redis_ready() -> bool:
            await redis.ping()
            return True

        readiness["redis"] = redis_ready
        events = FraudEvents(mongo, settings.events_collection)
        await events.ensure_indexes()
        scorer_metrics = ScorerMetrics(
            runtime.metrics,
            scores_topic=settings.scores_topic,
            decisions_topic=settings.decisions_topic,
        )
        sink = SinkWriter(
            events,
            log,
            clock_name=CLOCK,
            backoff=settings.kafka.backoff(),
            timing=scorer_metrics.sink_timing,
        )
        await sink.start()
        stack.push_async_callback(sink.close)
        gate = SinkGate(sink)
        pending = PendingBuffer(
            per_customer=settings.pending_per_customer,
            customers=settings.pending_customers,
            horizon=settings.pending_horizon,
        )
        scorer = Scorer(settings, FeatureReader(redis), source, pending)
        drift = DriftMonitor(
            delta=settings.drift_delta,
            features=settings.drift_features,
            cooldown_s=settings.drift_cooldown_s,
        )
        handler = ScorerHandler(
            settings, scorer, runtime.producer, sink, gate, scorer_metrics, drift
        )
        await stack.enter_async_context(
            background("model-poll", lambda stop: poll_models(source, settings.model_poll_s, stop))
        )
        loops.append(
            ConsumerLoop(
                _group(settings, "scorer"),
                topics=[settings.transactions_topic],
                handler=handler,
                commit_gate=gate,
                before_final_commit=sink.flush,
                # derived events continue each transaction's own trace; one span per batch
                span_per="batch",
                **common,
            )
        )

    if learning:
        # refuse to learn from a topic of several partitions (no total order of labels)
        check_label_partitions(
            settings.labels_topic, await partitions_of(settings.kafka, settings.labels_topic)
        )
        learner = Learner(
            settings=settings,
            kinds=kinds,
            registry=registry,
            log=log,
            producer=runtime.producer,
            metrics=LearnerMetrics(runtime.metrics),
            drift=DriftMonitor(
                delta=settings.drift_delta, features=(), cooldown_s=settings.drift_cooldown_s
            ),
        )
        await learner.start()
        await stack.enter_async_context(
            background("checkpoint-timer", lambda stop: checkpoint_timer(learner, stop))
        )
        loops.append(
            ConsumerLoop(
                _group(settings, "learner"),
                topics=[settings.labels_topic],
                handler=learner,
                commit_gate=learner.gate,
                before_final_commit=learner.checkpoint,
                **common,
            )
        )

    if labelling:
        labeller_metrics = LabellerMetrics(runtime.metrics)
        loops.append(
            ConsumerLoop(
                _group(settings, "labeller"),
                topics=[settings.disputes_topic],
                handler=DisputeHandler(settings, log, runtime.producer, labeller_metrics),
                **common,
            )
        )
        sweeper = Sweeper(settings, log, runtime.producer, labeller_metrics, CLOCK)
        await stack.enter_async_context(background("label-sweep", sweeper.run))

    api = rest.Api(kinds, registry, source, log, scorer, scorer_metrics)

    def routes(app: Any) -> None:
        rest.mount(app, api)

    _log.info("inference wired", role=role, kinds=list(kinds.all))
    return Wiring(loops=loops, readiness=readiness, routes=routes)
