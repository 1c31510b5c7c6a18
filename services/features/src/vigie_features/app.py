"""Wiring only: the worker (faust app + Redis sink) under ``run_service``, and the REST API."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import uvicorn
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from fastapi import FastAPI

from vigie_contracts.events.features import EntityType
from vigie_featureset import default_ttl
from vigie_runtime import (
    DeadLetterPublisher,
    Fatal,
    Metrics,
    Runtime,
    Wiring,
    configure_logging,
    configure_tracing,
    create_app,
    get_logger,
)
from vigie_runtime.settings import KafkaSettings
from vigie_stores.redis import RedisStore

from . import api
from .adapters.sink import FeatureSink
from .settings import FeaturesSettings
from .status import FeatureMetrics, WorkerStatus
from .worker import FeaturesWorker

_log = get_logger(__name__)

Wire = Callable[[Runtime], Awaitable[Wiring]]

ENTITY_TYPES = (EntityType.CUSTOMER, EntityType.CARD, EntityType.TERMINAL, EntityType.MERCHANT)


async def ensure_topics(settings: FeaturesSettings) -> None:
    """Create the internal topics; refuse to start when the transactions topic is not
    partitioned like them (the customers' states would not be co-partitioned)."""
    kafka: KafkaSettings = settings.kafka
    admin = AIOKafkaAdminClient(**kafka.client_options())
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        if settings.transactions_topic not in existing:
            raise Fatal(f"topic {settings.transactions_topic} does not exist (provision it first)")
        described = await admin.describe_topics([settings.transactions_topic])
        count = len(described[0]["partitions"])
        if count != settings.partitions:
            raise Fatal(
                f"{settings.transactions_topic} has {count} partitions, VIGIE_FEATURES_PARTITIONS "
                f"is {settings.partitions}: they must be equal (co-partitioned states)"
            )
        wanted = [
            NewTopic(name, settings.partitions, settings.replication_factor)
            for name in (
                settings.customer_events_topic,
                settings.merchant_events_topic,
            )
            if name not in existing
        ]
        if wanted:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(wanted)
    finally:
        await admin.close()


@contextlib.asynccontextmanager
async def _running(worker: FeaturesWorker, sink: FeatureSink) -> AsyncIterator[None]:
    await worker.app.start()
    try:
        yield
    finally:
        # what was handled gets acked (and committed by faust's stop) before the app stops;
        # what is handled meanwhile is re-read by the next owner of its partition
        await sink.flush()
        if worker.crash_reason() is None:
            await worker.app.stop()
        else:
            # a crashed app does not stop: it waits for the dead agent's event to be acked; the
            # process exits (``__main__``) and what was not committed is re-read by the next owner
            _log.error("faust crashed: not stopping it gracefully")
        await sink.flush()


async def _watch(worker: FeaturesWorker, sink: FeatureSink, stop: asyncio.Event) -> None:
    while not stop.is_set():
        reason = worker.crash_reason() or sink.error
        if reason is not None:
            _log.error("worker failed: stopping", error=repr(reason))
            stop.set()
            return
        await asyncio.sleep(0.5)


def worker_wiring(stop: asyncio.Event, failed: list[BaseException]) -> Wire:
    """The worker's wire function; a crash of faust or of the Redis flusher sets ``stop`` and is
    appended to ``failed`` (the process then exits 1)."""

    async def wire(runtime: Runtime) -> Wiring:
        settings = runtime.settings
        assert isinstance(settings, FeaturesSettings)  # noqa: S101 - run_service passes ours back
        stack = runtime.stack
        await ensure_topics(settings)
        redis = await stack.enter_async_context(await RedisStore.open(settings.redis))
        status = WorkerStatus()
        fm = FeatureMetrics(settings.service_name, runtime.metrics.registry)

        def flushed(written: int, stale: int, seconds: float) -> None:
            fm.redis_writes.labels(fm.service, "written").inc(written)
            fm.redis_writes.labels(fm.service, "stale").inc(stale)
            fm.flush_seconds.labels(fm.service).observe(seconds)

        ttls = {kind: default_ttl(kind, settings.allowed_lateness) for kind in ENTITY_TYPES}
        sink = await stack.enter_async_context(
            FeatureSink(
                redis,
                ttls,
                interval_s=settings.flush_interval_ms / 1000,
                max_pending=settings.max_pending_writes,
                on_flushed=flushed,
            )
        )
        worker = FeaturesWorker(
            settings,
            sink=sink,
            dead_letters=DeadLetterPublisher(
                runtime.producer, settings.service_name, runtime.metrics
            ),
            metrics=runtime.metrics,
            feature_metrics=fm,
            status=status,
            tracer=runtime.tracer,
        )
        await stack.enter_async_context(_running(worker, sink))
        watcher = asyncio.create_task(_watch(worker, sink, stop))

        async def cancel_watcher() -> None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            reason = worker.crash_reason() or sink.error
            if reason is not None:
                failed.append(reason)

        stack.push_async_callback(cancel_watcher)

        async def faust_ready() -> bool:
            return worker.running()

        async def redis_ready() -> bool:
            await redis.ping()
            return True

        def routes(app: FastAPI) -> None:
            @app.get("/status")
            async def status_route() -> dict[str, Any]:
                """What the worker did: consumed, applied, late (counted, not applied), dead
                letters, Redis writes, its partitions."""
                return status.snapshot(
                    app_id=settings.app_id,
                    running=worker.running(),
                    partitions=list(worker.assignment()),
                    recovery=worker.recovery(),
                    redis={
                        "pending": sink.pending,
                        "written": sink.written,
                        "stale": sink.stale,
                        "failures": sink.failures,
                        "last_error": sink.last_error,
                    },
                )

        return Wiring(readiness={"faust": faust_ready, "redis": redis_ready}, routes=routes)

    return wire


async def serve_api(settings: FeaturesSettings, *, stop: asyncio.Event | None = None) -> None:
    """The REST API process: Redis reads only, with the runtime's health and metrics routes."""
    obs = settings.observability
    configure_logging(obs)
    provider = configure_tracing(obs)
    metrics = Metrics(settings.service_name)
    async with AsyncExitStack() as stack:
        stack.callback(provider.shutdown)
        redis = await stack.enter_async_context(await RedisStore.open(settings.redis))

        async def redis_ready() -> bool:
            await redis.ping()
            return True

        app = create_app(settings, {"redis": redis_ready}, registry=metrics.registry)
        api.mount(app, redis, max_entities=settings.api_max_entities)
        config = uvicorn.Config(
            app, host=obs.http_host, port=obs.http_port, log_config=None, lifespan="on"
        )
        server = uvicorn.Server(config)
        if stop is None:
            await server.serve()
            return

        async def stopper() -> None:
            await stop.wait()
            server.should_exit = True

        task = asyncio.create_task(stopper())
        try:
            await server.serve()
        finally:
            task.cancel()
