"""The consume → decode → handle → write → commit loop every consuming service runs.

Guarantees (at-least-once from Kafka, exactly-once in effect with idempotent writes):

- offsets of a batch are committed only after the handler returned (its writes acknowledged)
  and every dead letter of the batch was acknowledged by Kafka;
- a record that cannot be decoded or validated goes to ``dlq.<service>`` at once;
- a batch whose handler raises a retryable error is retried with capped exponential backoff;
  after ``max_attempts`` its records are tried one by one and those still failing (or poison)
  are dead-lettered, so one bad record cannot stall a partition;
- a fatal error stops the loop without committing the batch;
- on rebalance, the in-flight batch finishes (or is abandoned if it is only waiting to retry)
  before the partitions are given up; on shutdown, polling stops and the batch in flight is
  finished and committed.

Sinks that make writes durable later (the lake's Parquet files are final only when they roll)
pass a ``commit_gate`` (see ``commit_gate``): each commit goes no further than the gate allows,
the rest stays pending and is committed after a later batch, on an idle poll, on revoke or at
shutdown. ``before_final_commit`` (e.g. the lake's ``flush``) runs before the commits of a revoke
and of the shutdown, so that what was handled can be committed then.

Tracing: ``span_per="record"`` (the default) starts one CONSUMER span per record, a child of
the producer's span. ``span_per="batch"`` starts one CONSUMER span per batch, linked (span
links, at most ``MAX_SPAN_LINKS``) to the records' producer spans: far cheaper for
high-volume topics; each ``Message.context`` is then the record's own remote context (or the
batch span's when the record carries none), so derived events continue the event's trace.

With a ``TransactionalProducer``, each unit of work (the handler's outputs, its dead letters and
the input offsets) is one Kafka transaction: exactly once for consume → produce steps.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import INVALID_SPAN, Link, Span, SpanKind, Status, StatusCode

from vigie_contracts import ContractError, Envelope, Topic

from .backoff import Backoff
from .commit_gate import CommitGate
from .dlq import DeadLetterPublisher
from .errors import (
    Backpressure,
    Classifier,
    ErrorKind,
    Fatal,
    Poison,
    classify,
)
from .headers import error_type_of
from .logging import get_logger
from .messages import Decoder, Message, envelope_decoder, from_record
from .metrics import Metrics
from .producer import Producer, TransactionalProducer
from .settings import ServiceSettings
from .tracing import extract
from .tracing import tracer as default_tracer

T = TypeVar("T")

#: the handler: write the batch (idempotently) and return; raise to say what went wrong
Handler = Callable[[Sequence[Message[T]]], Awaitable[None]]

#: what a decoder may raise for bad input (see ``messages.Decoder``)
BAD_INPUT = (ContractError, Poison, ValueError)

#: at most this many span links on a batch span (``span_per="batch"``): a span's cost grows
#: with its links and trace backends cap them anyway (OTel's default span limit is 128)
MAX_SPAN_LINKS = 128

SpanPer = Literal["record", "batch"]

_log = get_logger(__name__)


class _Abandon(Exception):  # noqa: N818 - internal control flow, not an error
    """The batch's partitions are being revoked, or the service stops, while it waits to retry:
    leave it uncommitted for whoever reads these partitions next."""


@dataclass(slots=True)
class _Item(Generic[T]):
    """One record of a batch and its fate."""

    message: Message[Any]
    span: Span  # INVALID_SPAN (a no-op) with span_per="batch": the batch has the span
    error: BaseException | None = None  # set: the record could not be decoded


class ConsumerLoop(Generic[T]):
    def __init__(
        self,
        settings: ServiceSettings,
        *,
        topics: Sequence[Topic | str],
        handler: Handler[T],
        producer: Producer,
        decoder: Decoder[T] = envelope_decoder,  # type: ignore[assignment]  # T=Envelope here
        metrics: Metrics | None = None,
        tracer: trace.Tracer | None = None,
        classifier: Classifier = classify,
        transactional: TransactionalProducer | None = None,
        lag_interval_s: float = 1.0,
        commit_gate: CommitGate | None = None,
        before_final_commit: Callable[[], Awaitable[object]] | None = None,
        span_per: SpanPer = "record",
        **consumer_overrides: Any,
    ) -> None:
        """``commit_gate``: how far commits may go (see ``commit_gate``); ``before_final_commit``:
        awaited before the commit of a revoke and of the shutdown (flush what the gate waits
        for); ``span_per``: one CONSUMER span per record (default) or per batch."""
        if commit_gate is not None and transactional is not None:
            # offsets go into the transaction with the outputs: there is nothing to hold back
            raise ValueError("commit_gate does not apply to a transactional loop")
        if span_per not in ("record", "batch"):
            raise ValueError(f"span_per must be 'record' or 'batch', not {span_per!r}")
        self.settings = settings
        self.service = settings.service_name
        self.group_id = settings.group_id
        self.topics = [t.name if isinstance(t, Topic) else t for t in topics]
        self.metrics = metrics if metrics is not None else Metrics(self.service)
        self._handler = handler
        self._decoder = decoder
        self._tracer = tracer or default_tracer()
        self._classify = classifier
        self._txn = transactional
        # in a transaction, dead letters must go through the transactional producer to be
        # part of it
        self._dlq = DeadLetterPublisher(transactional or producer, self.service, self.metrics)
        self._backoff: Backoff = settings.kafka.backoff()
        self._lag_interval = lag_interval_s
        self._last_lag = 0.0
        self._overrides = consumer_overrides
        self._stopping = asyncio.Event()
        self._revoking = False
        self._inflight = asyncio.Lock()
        #: next offset to read, per partition, as far as this loop processed it
        self._next: dict[TopicPartition, int] = {}
        #: processed but not yet committed (a commit failed, a revoke is pending, or the
        #: commit gate withholds it)
        self._pending: dict[TopicPartition, int] = {}
        self._gate = commit_gate
        self._before_final_commit = before_final_commit
        self._span_per: SpanPer = span_per
        #: per assigned partition, the offset committed last (or where reading started): a
        #: gated commit never goes below it
        self._committed: dict[TopicPartition, int] = {}
        self._consumer: Any = None
        self.started = asyncio.Event()

    # -- lifecycle ---------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop polling; ``run`` returns once the batch in flight is finished and committed."""
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def _make_consumer(self) -> Any:
        kafka = self.settings.kafka
        options: dict[str, Any] = {
            **kafka.client_options(),
            "group_id": self.group_id,
            "enable_auto_commit": False,
            "auto_offset_reset": "earliest",
            # outputs of aborted transactions must never be handled
            "isolation_level": "read_committed",
            "max_poll_interval_ms": kafka.max_poll_interval_ms,
            "session_timeout_ms": kafka.session_timeout_ms,
            "heartbeat_interval_ms": max(kafka.session_timeout_ms // 10, 500),
            **self._overrides,
        }
        return AIOKafkaConsumer(**options)

    async def run(self) -> None:
        """Consume until ``stop()``; on a fatal error, close the consumer and raise ``Fatal``."""
        consumer = self._make_consumer()
        await consumer.start()
        self._consumer = consumer
        consumer.subscribe(self.topics, listener=_Rebalance(self))
        self.started.set()
        _log.info("consumer loop started", topics=self.topics, group_id=self.group_id)
        kafka = self.settings.kafka
        try:
            while not self._stopping.is_set():
                batches = await consumer.getmany(
                    timeout_ms=kafka.batch_timeout_ms, max_records=kafka.batch_max_records
                )
                if batches:
                    async with self._inflight:
                        await self._process(consumer, batches)
                elif self._gate is not None and self._pending:
                    # idle: the gate may have opened since (a file rolled by age)
                    async with self._inflight:
                        await self._commit_pending(consumer, None)
                self._report_lag(consumer)
            async with self._inflight:
                await self._final_flush()
                await self._commit_pending(consumer, None)
        finally:
            self._consumer = None
            await consumer.stop()
            _log.info("consumer loop stopped", topics=self.topics)

    # -- one batch ---------------------------------------------------------------------------

    async def _process(self, consumer: Any, batches: dict[TopicPartition, list[Any]]) -> None:
        assigned = consumer.assignment()
        started = time.perf_counter()
        kept: list[tuple[TopicPartition, list[Any]]] = []
        for tp, records in batches.items():
            if tp not in assigned:
                continue  # revoked between the poll and now: its new owner reads them again
            if records:
                # where this loop started reading: the group's commit (or the reset point)
                self._committed.setdefault(tp, records[0].offset)
            self.metrics.count_consumed(tp.topic, len(records))
            kept.append((tp, records))
        if not kept:
            return
        if self._span_per == "batch":
            items, batch_span = self._decode_batch(kept)
        else:
            items = [self._decode(record) for _, records in kept for record in records]
            batch_span = None
        spans = [item.span for item in items] if batch_span is None else [batch_span]
        offsets = _next_offsets(item.message for item in items)
        try:
            await self._run_batch(items, offsets)
        except _Abandon:
            for span in spans:
                span.set_status(Status(StatusCode.ERROR, "abandoned: partitions revoked"))
                span.end()
            _log.warning("batch abandoned before commit", records=len(items))
            return
        except BaseException as exc:
            for span in spans:
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, str(exc)))
                span.end()
            raise
        if self._txn is None:
            self._pending.update(offsets)
            await self._commit_pending(consumer, None)
        self._next.update(offsets)
        self._account(items)
        if batch_span is not None:
            dead = sum(1 for item in items if item.error is not None)
            if dead:
                batch_span.set_attribute("vigie.dead_lettered_count", dead)
            batch_span.end()
        duration = time.perf_counter() - started
        self.metrics.batch_duration.labels(self.service).observe(duration)
        self.metrics.batch_size.labels(self.service).observe(len(items))

    def _decode_value(self, record: Any) -> tuple[Any, BaseException | None, Context]:
        error: BaseException | None = None
        value: Any = None
        try:
            value = self._decoder(record.value)
        except BAD_INPUT as exc:
            error = exc
        parent = extract(record.headers, value.traceparent if isinstance(value, Envelope) else None)
        return value, error, parent

    def _decode_batch(
        self, batches: list[tuple[TopicPartition, list[Any]]]
    ) -> tuple[list[_Item[T]], Span]:
        """``span_per="batch"``: decode every record, then one span linked to their producers."""
        decoded = [
            (record, *self._decode_value(record)) for _, records in batches for record in records
        ]
        links: list[Link] = []
        linked: set[tuple[int, int]] = set()
        for _, _, _, parent in decoded:
            if len(links) >= MAX_SPAN_LINKS:
                break
            remote = trace.get_current_span(parent).get_span_context()
            ident = (remote.trace_id, remote.span_id)
            if remote.is_valid and ident not in linked:
                linked.add(ident)
                links.append(Link(remote))
        topics = sorted({tp.topic for tp, _ in batches})
        attributes: dict[str, Any] = {
            "messaging.system": "kafka",
            "messaging.operation.type": "process",
            "messaging.destination.name": ",".join(topics),
            "messaging.batch.message_count": len(decoded),
            "messaging.consumer.group.name": self.group_id,
        }
        if len(batches) == 1:
            attributes["messaging.destination.partition.id"] = str(batches[0][0].partition)
        span = self._tracer.start_span(
            f"{','.join(topics)} process",
            context=Context(),  # a root: its records come from many traces, hence links
            kind=SpanKind.CONSUMER,
            links=links,
            attributes=attributes,
        )
        own = trace.set_span_in_context(span)
        items: list[_Item[T]] = []
        for record, value, error, parent in decoded:
            # derived events continue the event's own trace, not the batch's
            valid = trace.get_current_span(parent).get_span_context().is_valid
            message = from_record(record, value, parent if valid else own)
            items.append(_Item(message=message, span=INVALID_SPAN, error=error))
        return items, span

    def _decode(self, record: Any) -> _Item[T]:
        value, error, parent = self._decode_value(record)
        span = self._tracer.start_span(
            f"{record.topic} process",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "kafka",
                "messaging.operation.type": "process",
                "messaging.destination.name": record.topic,
                "messaging.destination.partition.id": str(record.partition),
                "messaging.kafka.offset": record.offset,
                "messaging.consumer.group.name": self.group_id,
            },
        )
        message = from_record(record, value, trace.set_span_in_context(span))
        return _Item(message=message, span=span, error=error)

    async def _run_batch(self, items: list[_Item[T]], offsets: dict[TopicPartition, int]) -> None:
        bad = [(item.message, item.error) for item in items if item.error is not None]
        good = [item.message for item in items if item.error is None]
        for item in items:
            if item.error is not None:
                self.metrics.count_failed(item.message.topic, error_type_of(item.error))
                item.span.set_status(Status(StatusCode.ERROR, str(item.error)))
                item.span.set_attribute("vigie.dead_lettered", True)
        if self._txn is None and bad:
            # dead letters first and acknowledged: their offsets are in this batch's commit
            await self._dlq.publish(bad)
            bad = []
        try:
            await self._with_retries(good, bad, offsets)
            return
        except _GiveUp as exc:
            cause = exc.cause
            _log.warning(
                "batch failed, isolating its records",
                records=len(good),
                error=str(cause),
                error_type=error_type_of(cause),
            )
        # one by one: the records that still fail are dead-lettered, the others written
        spans = {item.message.position: item.span for item in items}
        for item in items:
            message = item.message
            single = {TopicPartition(message.topic, message.partition): message.offset + 1}
            if item.error is not None:
                if self._txn is not None:
                    await self._unit([], [(message, item.error)], single)
                continue  # without a transaction it was dead-lettered above
            try:
                if len(good) == 1:
                    raise cause  # already tried alone: no need for one more attempt
                await self._unit([message], [], single)
            except Exception as exc:
                kind = self._kind(exc)
                if exc is not cause:
                    self.metrics.count_failed(message.topic, error_type_of(exc))
                if kind is ErrorKind.FATAL:
                    raise _as_fatal(exc) from exc
                spans[message.position].set_status(Status(StatusCode.ERROR, str(exc)))
                spans[message.position].set_attribute("vigie.dead_lettered", True)
                _log.warning(
                    "record dead-lettered",
                    position=message.position,
                    error=str(exc),
                    error_type=error_type_of(exc),
                )
                await self._unit([], [(message, exc)], single)

    async def _with_retries(
        self,
        good: list[Message[T]],
        bad: list[tuple[Message[Any], BaseException]],
        offsets: dict[TopicPartition, int],
    ) -> None:
        attempt = 0
        while True:
            try:
                await self._unit(good, bad, offsets)
                return
            except Backpressure as exc:
                _log.info("handler asked to slow down", retry_after=exc.retry_after)
                await self._wait(exc.retry_after)
                continue
            except Exception as exc:
                kind = self._kind(exc)
                if kind is ErrorKind.FATAL:
                    raise _as_fatal(exc) from exc
                self.metrics.count_failed(good[0].topic if good else "", error_type_of(exc))
                if kind is ErrorKind.POISON:
                    raise _GiveUp(exc) from exc
                attempt += 1
                self.metrics.retries.labels(self.service).inc()
                if attempt >= self._backoff.max_attempts:
                    raise _GiveUp(exc) from exc
                delay = self._backoff.delay(attempt)
                _log.warning(
                    "batch failed, will retry",
                    attempt=attempt,
                    delay_s=round(delay, 3),
                    error=str(exc),
                    error_type=error_type_of(exc),
                )
                await self._wait(delay)

    async def _unit(
        self,
        good: Sequence[Message[T]],
        bad: list[tuple[Message[Any], BaseException]],
        offsets: dict[TopicPartition, int],
    ) -> None:
        """One unit of work: the handler's writes and the dead letters (and, in a transaction,
        the input offsets), all or nothing as far as Kafka is concerned."""
        if self._txn is None:
            if good:
                await self._handler(good)
            if bad:
                await self._dlq.publish(bad)
            return
        async with self._txn.transaction():
            if bad:
                await self._dlq.publish(bad)
            if good:
                await self._handler(good)
            await self._txn.send_offsets(offsets, self.group_id)

    def _kind(self, exc: BaseException) -> ErrorKind:
        return self._classify(exc)

    # -- waiting without leaving the group ---------------------------------------------------

    async def _wait(self, seconds: float) -> None:
        """Sleep ``seconds`` with every partition paused, still polling so the group does not
        evict us (max.poll.interval.ms); give up the batch if a revoke or a stop comes in."""
        consumer = self._consumer
        self.metrics.paused.labels(self.service).set(1)
        deadline = time.monotonic() + seconds
        try:
            while True:
                if self._revoking or self._stopping.is_set():
                    raise _Abandon
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                if consumer is None:
                    await asyncio.sleep(remaining)
                    continue
                consumer.pause(*consumer.assignment())
                fetched = await consumer.getmany(timeout_ms=int(min(remaining, 0.5) * 1000) + 1)
                for tp, records in fetched.items():
                    # a partition assigned during the wait was not paused: rewind, so nothing
                    # is skipped
                    if records:
                        consumer.seek(tp, records[0].offset)
        finally:
            if consumer is not None:
                consumer.resume(*consumer.assignment())
            self.metrics.paused.labels(self.service).set(0)

    # -- commits, rebalance, metrics ---------------------------------------------------------

    async def _final_flush(self) -> None:
        """Before the last commit (revoke, shutdown): let the owner make its writes durable."""
        if self._before_final_commit is None:
            return
        try:
            await self._before_final_commit()
        except Exception as exc:
            # the gate still holds back what is not durable: commit what it allows
            _log.error("before_final_commit failed", error=str(exc), error_type=type(exc).__name__)

    def _gated(self, offsets: dict[TopicPartition, int]) -> dict[TopicPartition, int]:
        """What of ``offsets`` the commit gate lets through now; the rest stays pending."""
        if self._gate is None:
            return offsets
        allowed = self._gate(offsets)
        through: dict[TopicPartition, int] = {}
        for tp, requested in offsets.items():
            limit = allowed.get(tp)
            if limit is None or limit >= requested:
                through[tp] = requested
                continue
            self._pending[tp] = requested  # withheld: asked again later
            # never backwards: a gate answering less than what is committed means "not yet"
            if limit > self._committed.get(tp, 0):
                through[tp] = limit
        return through

    async def _commit_pending(self, consumer: Any, only: Iterable[TopicPartition] | None) -> None:
        if self._txn is not None or not self._pending:
            return
        wanted = set(self._pending) if only is None else set(only) & set(self._pending)
        assigned = consumer.assignment()
        offsets = {tp: self._pending[tp] for tp in wanted if tp in assigned}
        for tp in wanted:
            self._pending.pop(tp, None)
        offsets = self._gated(offsets)
        if not offsets:
            return
        try:
            await consumer.commit(offsets)
            self._committed.update(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            # the group moved on: another member owns these partitions and re-reads from the
            # last commit; the writes were idempotent, so this costs duplicates, not data
            _log.warning("commit refused after a rebalance", error=str(exc))
        except KafkaError as exc:
            raise Fatal(f"offset commit failed: {exc!r}") from exc

    def _account(self, items: list[_Item[T]]) -> None:
        now = time.time()
        by_topic: dict[str, list[float]] = {}
        ages: dict[str, list[float]] = {}
        counts: dict[str, int] = {}
        for item in items:
            message = item.message
            counts[message.topic] = counts.get(message.topic, 0) + 1
            ages.setdefault(message.topic, []).append(now - message.timestamp / 1000)
            if isinstance(message.value, Envelope):
                by_topic.setdefault(message.topic, []).append(
                    now - message.value.event_time.timestamp()
                )
            item.span.end()
        for topic, n in counts.items():
            self.metrics.count_processed(topic, n)
        for topic, latencies in by_topic.items():
            self.metrics.observe_latencies(topic, latencies)
        for topic, latencies in ages.items():
            self.metrics.observe_record_latencies(topic, latencies)

    def _report_lag(self, consumer: Any) -> None:
        now = time.monotonic()
        if now - self._last_lag < self._lag_interval:
            return
        self._last_lag = now
        for tp in consumer.assignment():
            highwater = consumer.highwater(tp)
            position = self._next.get(tp)
            if highwater is not None and position is not None:
                self.metrics.set_lag(tp.topic, tp.partition, highwater - position)

    async def _on_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        revoked = list(revoked)
        self._revoking = True
        try:
            # waits for the batch in flight: finished (and committed) or abandoned
            async with self._inflight:
                if self._consumer is not None:
                    if any(tp in self._pending for tp in revoked):
                        await self._final_flush()
                    await self._commit_pending(self._consumer, revoked)
                for tp in revoked:
                    # what the gate still withholds is dropped: the partition's next owner
                    # reads again from the last commit (at least once)
                    self._next.pop(tp, None)
                    self._pending.pop(tp, None)
                    self._committed.pop(tp, None)
                    self.metrics.forget_partition(tp.topic, tp.partition)
        finally:
            self._revoking = False
        if revoked:
            _log.info(
                "partitions revoked", partitions=[f"{tp.topic}:{tp.partition}" for tp in revoked]
            )


class _GiveUp(Exception):  # noqa: N818 - internal control flow
    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped
    def __init__(self, loop: ConsumerLoop[Any]) -> None:
        self._loop = loop

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        await self._loop._on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        _log.info(
            "partitions assigned",
            partitions=sorted(f"{tp.topic}:{tp.partition}" for tp in assigned),
        )


def _next_offsets(messages: Iterable[Message[Any]]) -> dict[TopicPartition, int]:
    offsets: dict[TopicPartition, int] = {}
    for message in messages:
        tp = TopicPartition(message.topic, message.partition)
        offsets[tp] = max(offsets.get(tp, 0), message.offset + 1)
    return offsets


def _as_fatal(exc: BaseException) -> Fatal:
    return exc if isinstance(exc, Fatal) else Fatal(f"{error_type_of(exc)}: {exc}")
