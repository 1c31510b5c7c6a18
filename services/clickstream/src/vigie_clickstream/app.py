"""Wiring only: stores on the runtime's exit stack, the collector, the pipeline loop, the API."""

from __future__ import annotations

import asyncio
from typing import Any

from vigie_runtime import ErrorKind, Runtime, SinkGate, Wiring, classify, get_logger
from vigie_stores import StoreError, StoreRejected
from vigie_stores.cassandra import CassandraStore
from vigie_stores.lake import LakeWriter
from vigie_stores.redis import RedisStore

from .adapters.codec import click_decoder
from .adapters.enrich import Countries, UserAgents
from .adapters.session_state import SessionState
from .adapters.tables import ClickstreamTables
from .api import QueryApi
from .collector import Collector
from .pipeline import Pipeline
from .settings import ClickstreamSettings

_log = get_logger(__name__)


def classify_error(exc: BaseException) -> ErrorKind:
    """Stores say whether to retry; a row a store refuses is that record's fault."""
    if isinstance(exc, StoreRejected):
        return ErrorKind.POISON
    if isinstance(exc, StoreError):
        return ErrorKind.RETRY if exc.retryable else ErrorKind.FATAL
    return classify(exc)


async def _roll_lake(lake: LakeWriter, every_s: float) -> None:
    # files also roll on writes; this completes them when traffic stops
    while True:
        await asyncio.sleep(every_s)
        try:
            await lake.roll_expired()
        except StoreError as exc:
            _log.warning("lake roll failed", error=str(exc))


async def wire(runtime: Runtime, *, hold: dict[str, Any] | None = None) -> Wiring:
    """Build the service; ``hold`` (tests, benchmarks) receives the pipeline and collector."""
    settings = runtime.settings
    assert isinstance(settings, ClickstreamSettings)  # noqa: S101 - run_service passes ours back
    stack = runtime.stack
    cassandra = await CassandraStore.open(settings.cassandra)
    stack.push_async_callback(cassandra.close)
    tables = ClickstreamTables(
        cassandra, settings.pipeline.keyspace, settings.pipeline.write_concurrency
    )
    await tables.ensure()
    readiness: dict[str, Any] = {"cassandra": cassandra.ping}
    routes = []
    loops = []

    if settings.collector.enabled:
        countries = stack.enter_context(Countries(settings.pipeline.maxmind_db))
        collector = Collector(
            settings.collector,
            settings.limits,
            runtime.producer,
            countries=countries if countries.configured else None,
            topic=settings.topics.raw,
        )
        routes.append(collector.routes)
        if hold is not None:
            hold["collector"] = collector

    if settings.pipeline.enabled:
        redis = await RedisStore.open(settings.redis)
        stack.push_async_callback(redis.close)
        readiness["redis"] = redis.ping
        lake = None
        gate: SinkGate | None = None
        if settings.pipeline.lake_enabled:
            lake = LakeWriter(settings.lake)
            stack.push_async_callback(lake.close)  # after the loop drained: completes open files
            roller = asyncio.create_task(
                _roll_lake(lake, min(30.0, settings.lake.max_file_age.total_seconds()))
            )
            stack.callback(roller.cancel)
            # commits wait for the lake: a record's offset is committed once its file is final
            gate = SinkGate(lake)
        pipeline = Pipeline(
            settings,
            tables=tables,
            producer=runtime.producer,
            sessions=SessionState(redis, settings.sessions.redis_prefix, settings.topics.raw),
            metrics=runtime.metrics,
            lake=lake,
            lake_gate=gate,
            user_agents=UserAgents(settings.pipeline.user_agent_cache),
            events_topic=settings.topics.events,
            sessions_topic=settings.topics.sessions,
        )
        loops.append(
            runtime.consumer_loop(
                topics=[settings.topics.raw],
                handler=pipeline.handle,
                decoder=click_decoder(settings.limits),
                classifier=classify_error,
                commit_gate=gate,
                # at stop / on revoke the lake completes its files first, so all can be committed
                before_final_commit=lake.flush if lake is not None else None,
                # one span per batch: per-record spans cost more than the rest of a record's path
                span_per="batch",
            )
        )
        if hold is not None:
            hold["pipeline"] = pipeline

    if settings.api.enabled:
        routes.append(QueryApi(tables, settings.api).routes)

    def mount(app: Any) -> None:
        for add in routes:
            add(app)

    return Wiring(loops=loops, readiness=readiness, routes=mount)


__all__ = ["classify_error", "wire"]
