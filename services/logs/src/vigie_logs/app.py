"""Wiring only: logs.raw → (pure) parse, redact, classify → Cassandra + lake + logs.security."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from vigie_runtime import (
    DeadLetterPublisher,
    ErrorKind,
    Fatal,
    Message,
    Poison,
    Producer,
    Retryable,
    Runtime,
    Wiring,
    classify,
    get_logger,
)
from vigie_stores import StoreConflict, StoreError
from vigie_stores.cassandra import CassandraStore
from vigie_stores.lake import LakeWriter

from . import api
from .adapters import lake as lake_adapter
from .adapters.cassandra import LogStore
from .handlers import Outcome, Redactor, Source, check_raw, process, security_envelope, security_key
from .settings import LogsSettings

_log = get_logger(__name__)


def classify_error(exc: BaseException) -> ErrorKind:
    """Store errors say whether they are transient; the rest follows the runtime's policy.

    A value the driver cannot bind is one bad record, not a broken deployment: poison, so the
    loop isolates it and dead-letters it alone (vigie_stores raises StoreRejected for both; the
    message is the only way to tell them apart until it has a subclass for it).
    """
    if isinstance(exc, StoreError):
        if exc.retryable:
            return ErrorKind.RETRY
        if isinstance(exc, StoreConflict) or "cannot bind" in str(exc):
            return ErrorKind.POISON
        return ErrorKind.FATAL
    return classify(exc)


@dataclass
class LogsHandler:
    """The consumer loop's handler: process each record, then write everything, then return
    (the loop commits only after that)."""

    settings: LogsSettings
    redactor: Redactor
    store: LogStore
    lake: LakeWriter | None
    producer: Producer
    dead_letters: DeadLetterPublisher

    async def __call__(self, messages: Sequence[Message[bytes]]) -> None:
        outcomes: list[Outcome] = []
        failed: list[tuple[Message[Any], BaseException]] = []
        for message in messages:
            source = Source(
                message.topic, message.partition, message.offset, message.timestamp, message.key
            )
            try:
                outcomes.append(
                    process(
                        message.value,
                        source,
                        self.redactor,
                        max_bytes=self.settings.max_record_bytes,
                    )
                )
            except Exception as exc:  # a parser bug must not stop the pipeline: dead-letter it
                _log.warning("record not processed", position=message.position, error=repr(exc))
                failed.append((message, Poison(f"parse failed: {type(exc).__name__}: {exc}")))
        if failed:
            await self.dead_letters.publish(failed)
        if not outcomes:
            return
        records = [o.record for o in outcomes]
        try:
            await asyncio.gather(
                self.store.write(records),
                self._to_lake(records),
                self._publish(outcomes),
            )
        except StoreError as exc:
            if exc.retryable:
                raise Retryable(str(exc)) from exc
            raise

    async def _to_lake(self, records: Sequence[Any]) -> None:
        if self.lake is None:
            return
        try:
            await lake_adapter.write(self.lake, records)
        except StoreError as exc:
            # a failed writer refuses further work; a restart re-reads the uncommitted batch
            raise Fatal(f"lake write failed: {exc}") from exc

    async def _publish(self, outcomes: Sequence[Outcome]) -> None:
        sends = []
        for outcome in outcomes:
            if outcome.security is None:
                continue
            envelope = security_envelope(
                outcome.security, outcome.record, self.settings.service_name
            )
            sends.append(
                self.producer.send(
                    self.settings.security_topic, envelope, key=security_key(outcome.security)
                )
            )
        if sends:
            await asyncio.gather(*sends)


@contextlib.asynccontextmanager
async def _lake_roller(lake: LakeWriter, every_s: float) -> AsyncIterator[None]:
    """Completes files older than max_file_age even when no record arrives to trigger it."""

    async def roll() -> None:
        while True:
            await asyncio.sleep(every_s)
            try:
                await lake.roll_expired()
            except StoreError as exc:
                _log.error("lake roll failed", error=str(exc))

    task = asyncio.create_task(roll())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def wire(runtime: Runtime) -> Wiring:
    settings = runtime.settings
    assert isinstance(settings, LogsSettings)  # noqa: S101 - run_service passes ours back
    cassandra = await runtime.stack.enter_async_context(
        await CassandraStore.open(settings.cassandra)
    )
    store = LogStore(cassandra, settings.keyspace)
    await store.ensure_schema(settings.replication_factor)
    lake: LakeWriter | None = None
    if settings.lake_enabled:
        lake = await runtime.stack.enter_async_context(LakeWriter(settings.lake))
        await runtime.stack.enter_async_context(_lake_roller(lake, settings.lake_roll_interval_s))
    handler = LogsHandler(
        settings=settings,
        redactor=Redactor(settings.pseudonym_key.get_secret_value().encode()),
        store=store,
        lake=lake,
        producer=runtime.producer,
        dead_letters=DeadLetterPublisher(runtime.producer, settings.service_name, runtime.metrics),
    )
    loop = runtime.consumer_loop(
        topics=[settings.input_topic],
        handler=handler,
        decoder=check_raw,
        classifier=classify_error,
    )

    async def cassandra_ready() -> bool:
        await cassandra.ping()
        return True

    def routes(app: Any) -> None:
        api.mount(app, store, max_limit=settings.api_max_limit, max_hours=settings.api_max_hours)

    return Wiring(loops=[loop], readiness={"cassandra": cassandra_ready}, routes=routes)
