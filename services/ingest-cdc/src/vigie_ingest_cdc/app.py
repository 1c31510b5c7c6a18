"""Wiring only: stores on the exit stack, the consumer loop, the REST routes."""

from __future__ import annotations

from typing import cast

from vigie_runtime import (
    DeadLetterPublisher,
    ErrorKind,
    Runtime,
    Wiring,
    classify,
)
from vigie_stores import StoreError
from vigie_stores.mongo import MongoStore

from .adapters import EventPublisher, Mirrors, RawZone
from .api import routes
from .handlers import Pseudonymizer
from .pipeline import Pipeline
from .settings import IngestCdcSettings
from .status import CdcMetrics, Status


def classifier(exc: BaseException) -> ErrorKind:
    # The pipeline turns unavailability into backpressure; what reaches here is either the
    # runtime's own (dead-letter publisher, Fatal) or a store refusing a request: a bug or a
    # deployment problem, so stop rather than let the loop dead-letter bytes that hold a PAN.
    if isinstance(exc, StoreError) and exc.retryable:
        return ErrorKind.RETRY
    if isinstance(exc, StoreError):
        return ErrorKind.FATAL
    return classify(exc)


async def wire(runtime: Runtime) -> Wiring:
    settings = cast(IngestCdcSettings, runtime.settings)
    pii = Pseudonymizer(
        settings.pii.card_token_key.get_secret_value().encode(),
        settings.pii.pseudonym_key.get_secret_value().encode(),
        settings.pii.pseudonymised_columns,
    )
    store = await MongoStore.open(settings.mongo)
    runtime.stack.push_async_callback(store.close)
    mirrors = Mirrors(store, settings.mirror_write_mode, settings.mirror_write_concurrency)
    lake: RawZone | None = None
    if settings.lake_enabled:
        lake = RawZone(settings.lake)
        runtime.stack.push_async_callback(lake.close)
    status = Status()
    pipeline = Pipeline(
        tables=settings.tables,
        pii=pii,
        events=EventPublisher(runtime.producer, runtime.metrics),
        mirrors=mirrors,
        lake=lake,
        dead_letters=DeadLetterPublisher(runtime.producer, settings.service_name, runtime.metrics),
        status=status,
        metrics=CdcMetrics(settings.service_name, runtime.metrics.registry),
        backoff_max_s=settings.unavailable_backoff_max_s,
    )
    loop = runtime.consumer_loop(
        topics=settings.topics,
        handler=pipeline.handle,
        decoder=_raw,
        classifier=classifier,
        auto_offset_reset=settings.start_offset,
        # Debezium creates a table's topic at its first change: notice it within seconds
        metadata_max_age_ms=10_000,
    )

    async def mongo_ready() -> bool:
        await store.ping()
        return True

    def extra() -> dict[str, object]:
        return {"topics": loop.topics, "group_id": loop.group_id}

    return Wiring(
        loops=[loop],
        readiness={"mongo": mongo_ready},
        routes=routes(mirrors, status, settings.tables, extra),
    )


def _raw(value: bytes | None) -> bytes | None:
    # parsing happens in the pipeline, which dead-letters with the PII replaced
    return value
