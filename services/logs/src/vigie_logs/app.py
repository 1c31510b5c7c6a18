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
    SinkGate,
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
    #: told what the lake accepted, so commits wait until it is in a final file
    lake_gate: SinkGate | None = None

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
            raw = [lake_adapter.raw_record(r) for r in records]
            await self.lake.write(raw)
        except StoreError as exc:
            # a failed writer refuses further work; a restart re-reads the uncommitted batch
            raise Fatal(f"lake write failed: {exc}") from exc
        if self.lake_gate is not None:
            self.lake_gate.wrote(raw)

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
    gate: SinkGate | None = None
    if settings.lake_enabled:
        lake = await runtime.stack.enter_async_context(LakeWriter(settings.lake))
        await runtime.stack.enter_async_context(_lake_roller(lake, settings.lake_roll_interval_s))
        # commits wait for the lake: an offset is committed once its record is in a final file
        # (the roller completes files by age; the idle loop then commits)
        gate = SinkGate(lake)
    handler = LogsHandler(
        settings=settings,
        redactor=Redactor(settings.pseudonym_key.get_secret_value().encode()),
        store=store,
        lake=lake,
        producer=runtime.producer,
        dead_letters=DeadLetterPublisher(runtime.producer, settings.service_name, runtime.metrics),
        lake_gate=gate,
    )
    loop = runtime.consumer_loop(
        topics=[settings.input_topic],
        handler=handler,
        decoder=check_raw,
        classifier=classify_error,
        commit_gate=gate,
        # at stop / on revoke the lake completes its files first, so all can be committed
        before_final_commit=lake.flush if lake is not None else None,
        # one span per batch, linked to the records' producers: per-record spans were ~70 µs
        # a record, a quarter of this service's budget on logs.raw
        span_per="batch",
    )

    async def cassandra_ready() -> bool:
        await cassandra.ping()
        return True

    def routes(app: Any) -> None:
        api.mount(app, store, max_limit=settings.api_max_limit, max_hours=settings.api_max_hours)

    return Wiring(loops=[loop], readiness={"cassandra": cassandra_ready}, routes=routes)
