"""The faust-streaming worker: entity states in changelog-backed tables, hashes to Redis.

Topology (every table and internal topic has the transactions topic's partition count):

    payments.refunds ─┐
    fraud.labels ─────┼─ route ─► features-customer-events (key: customer_id) ─┐
    clickstream.sessions ┘                                                     │
    payments.transactions (key: customer_id) ──────────────────────────────────┴► customers
        customers: customer + card states; forwards transactions and fraud labels
        ─► features-merchant-events (key: merchant_id) ─► merchants: merchant + terminal states

A table key is always updated from the same partition number (co-partitioned topics, same
murmur2 partitioner as every vigie producer; a card lives with its customer, a terminal with its
merchant), so faust's per-partition changelog and RocksDB stay consistent and a restarted worker
recovers each partition's states from Kafka.

Events are acknowledged only once the hashes they changed are in Redis (``FeatureSink``), and
faust commits only acknowledged offsets, after flushing what was produced (changelogs and
forwards). A crash therefore replays events whose effects may already be in the changelog, in
the forwards or in Redis: the states drop duplicates (by transaction, refund, session id; the
earliest fraud label), forwards are re-sent and dropped downstream, and Redis writes are
versioned by ``EntityState.version``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import faust
from faust.streams import Stream
from faust.types import EventT, StreamT
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from vigie_contracts.events.features import EntityType
from vigie_featureset import EntityState, TxFact
from vigie_runtime import DeadLetterPublisher, Message, Metrics, get_logger
from vigie_runtime.loop import BAD_INPUT
from vigie_runtime.tracing import extract, inject

from .adapters.changelog_flush import drain_before_commit
from .adapters.commit_offsets import guard_commits, keep_fetched_events
from .adapters.sink import FeatureSink
from .handlers import (
    HeldLabels,
    Ignored,
    Kind,
    Routed,
    Step,
    decode_forward,
    decode_internal,
    decode_source,
    encode_forward,
    encode_internal,
    event_time_of,
    hash_fields,
    on_customer_event,
    on_forward,
)
from .settings import FeaturesSettings
from .status import FeatureMetrics, WorkerStatus

_log = get_logger(__name__)

Headers = list[tuple[str, bytes]]


class _Table(faust.Table[bytes, bytes]):
    """faust's table, without one false alarm of its first writes.

    faust checks that a table's changelog has as many partitions as the source topic, reading the
    counts from the consumer group's metadata. That metadata gives 0 for a topic it does not list
    (yet): a changelog faust has just created on a fresh broker, or after a rebalance, until the
    next refresh. faust then raised ``PartitionsMismatch ... 0 partitions`` and the worker stopped
    (every first start of ``./vigie up``, and when a second worker joined). 0 is never the count
    of a topic that exists: the check waits for a known count (a real mismatch still raises).
    """

    def _verify_source_topic_partitions(self, source_topic: str) -> None:
        # called on every table write: once faust has verified a source topic, it only looks it
        # up in its set, and so do we (no metadata lookup on the hot path)
        if (
            source_topic not in self._verified_source_topics_for_partitions
            and self.app.consumer.topic_partitions(self.changelog_topic_name) == 0
        ):
            return
        super()._verify_source_topic_partitions(source_topic)


def store_url(settings: FeaturesSettings) -> tuple[str, str | None]:
    """faust's table store, and why it is not the one asked for (rocksdict missing)."""
    if settings.store == "memory":
        return "memory://", None
    try:
        import rocksdict  # noqa: F401
    except ImportError as exc:  # pragma: no cover - rocksdict installs here
        note = f"rocksdict unavailable ({exc}): memory tables, full changelog replay at start"
        _log.warning("falling back to memory tables", reason=str(exc))
        return "memory://", note
    return "rocksdb://", None


def _headers(raw: Any) -> Headers:
    if not raw:
        return []
    items = raw.items() if isinstance(raw, Mapping) else raw
    return [(str(k), bytes(v) if v is not None else b"") for k, v in items]


def _manual_acks(stream: StreamT[bytes]) -> StreamT[bytes]:
    """The stream with acks left to us (``StreamT`` does not declare ``noack``)."""
    return cast(Stream[bytes], stream).noack()


@dataclass(frozen=True, slots=True)
class _Position:
    topic: str
    partition: int
    offset: int

    def __str__(self) -> str:
        return f"{self.topic}:{self.partition}:{self.offset}"


class FeaturesWorker:
    """Builds the faust app; ``app.start()`` / ``app.stop()`` are the caller's (see ``app``)."""

    def __init__(
        self,
        settings: FeaturesSettings,
        *,
        sink: FeatureSink,
        dead_letters: DeadLetterPublisher,
        metrics: Metrics,
        feature_metrics: FeatureMetrics,
        status: WorkerStatus,
        tracer: trace.Tracer,
    ) -> None:
        self.settings = settings
        self.sink = sink
        self.dead_letters = dead_letters
        self.metrics = metrics
        self.fm = feature_metrics
        self.status = status
        self.tracer = tracer
        self.lateness = settings.allowed_lateness
        store, note = store_url(settings)
        status.store = store.removesuffix("://")
        status.store_note = note
        servers = [f"kafka://{h.strip()}" for h in settings.kafka.bootstrap_servers.split(",")]
        p = settings.partitions
        self.app = faust.App(
            settings.app_id,
            broker=servers,
            store=store,
            datadir=str(settings.data_dir),
            key_serializer="raw",
            value_serializer="raw",
            topic_partitions=p,
            topic_replication_factor=settings.replication_factor,
            topic_disable_leader=True,
            web_enabled=False,
            producer_acks=-1,
            # every table write and forward is a record: without a linger each one is a produce
            # request of its own (the worker then spends its time in socket sends)
            producer_linger=settings.kafka.linger_ms / 1000,
            producer_max_batch_size=256 * 1024,
            producer_compression_type=settings.kafka.compression,
            broker_commit_interval=settings.commit_interval_s,
            # a member killed without leaving holds its partitions until this expires
            broker_session_timeout=settings.kafka.session_timeout_ms / 1000,
            broker_heartbeat_interval=max(settings.kafka.session_timeout_ms / 10_000, 0.5),
            consumer_auto_offset_reset="earliest",
            consumer_group_instance_id=settings.group_instance_id,
            Table=_Table,
            autodiscover=False,
        )
        app = self.app
        # faust queues every table write for its changelog and stops consuming (flushing one
        # message per wait) once 100 are pending: at thousands of events/s that cap, not the
        # CPU, bounds the worker. aiokafka batches what the buffer hands it.
        app.producer.buffer.max_messages = settings.changelog_buffer
        drain_before_commit(app.producer.buffer)
        guard_commits(app.consumer)
        keep_fetched_events(app.flow_control, app.tables)

        def topic(*names: str) -> Any:
            return app.topic(*names, key_serializer="raw", value_serializer="raw")

        self.routed_topic = topic(settings.customer_events_topic)
        self.merchant_topic = topic(settings.merchant_events_topic)
        sources = topic(settings.refunds_topic, settings.labels_topic, settings.sessions_topic)
        customer_inputs = topic(settings.transactions_topic, settings.customer_events_topic)

        def table(name: str, help_: str) -> Any:
            return app.Table(
                name, default=None, partitions=p, key_type=bytes, value_type=bytes, help=help_
            )

        self.tables: dict[EntityType, Any] = {
            EntityType.CUSTOMER: table("customers", "EntityState of each customer"),
            EntityType.CARD: table("cards", "EntityState of each card (by token)"),
            # on its merchant's partition (the table of the per-terminal layout was "terminals")
            EntityType.TERMINAL: table(
                "merchant-terminals", "EntityState of each terminal, with its merchant's"
            ),
            EntityType.MERCHANT: table("merchants", "EntityState of each merchant"),
        }
        self.held = table("held-labels", "fraud labels waiting for their transaction, by customer")
        #: the first exception an agent died of (faust would restart it and carry on)
        self.agent_failure: BaseException | None = None
        agents: list[tuple[Any, str, Callable[[StreamT[bytes]], Any]]] = [
            (sources, "route", self._route_agent),
            (customer_inputs, "customers", self._customer_agent),
            (self.merchant_topic, "merchants", self._merchant_agent),
        ]
        for channel, name, fun in agents:
            app.agent(channel, name=name)(self._supervised(name, fun))

    @property
    def internal_topics(self) -> list[str]:
        s = self.settings
        return [s.customer_events_topic, s.merchant_events_topic]

    # -- agents --------------------------------------------------------------------------------

    def _supervised(
        self, name: str, fun: Callable[[StreamT[bytes]], Any]
    ) -> Callable[[StreamT[bytes]], Any]:
        """``fun``, recording what it dies of. faust's supervisor restarts a crashed agent in a
        loop while the process looks healthy; the worker stops instead (``crash_reason``), so
        Kubernetes restarts the pod and the unacked event is re-read from Kafka."""

        async def agent(stream: StreamT[bytes]) -> None:
            try:
                await fun(stream)
            except asyncio.CancelledError:
                raise  # a rebalance or the stop: faust's business
            except Exception as exc:
                if self.agent_failure is None:
                    self.agent_failure = exc
                _log.error("agent crashed: the worker stops", agent=name, error=repr(exc))
                raise

        agent.__name__ = f"{name}_agent"
        agent.__doc__ = fun.__doc__
        return agent

    async def _route_agent(self, stream: StreamT[bytes]) -> None:
        async for event in stream.events():
            message = event.message
            self._count_consumed(message.topic)
            with self._span(message) as span:
                try:
                    routed = decode_source(event.value)
                except BAD_INPUT as exc:
                    await self._dead_letter(event, exc)
                    continue
                if isinstance(routed, Ignored):
                    self._ignored(routed)
                    continue
                await self._send(
                    self.routed_topic, routed.customer_id, encode_internal(routed), span
                )

    async def _customer_agent(self, stream: StreamT[bytes]) -> None:
        manual = _manual_acks(stream)
        async for event in manual.events():
            await self._on_customer(manual, event)

    async def _on_customer(self, stream: StreamT[bytes], event: EventT[bytes]) -> None:
        message = event.message
        self._count_consumed(message.topic)
        with self._span(message) as span:
            try:
                if message.topic == self.settings.transactions_topic:
                    decoded = decode_source(event.value)
                else:
                    decoded = decode_internal(event.value)
            except BAD_INPUT as exc:
                await self._dead_letter(event, exc)
                await stream.ack(event)
                return
            if isinstance(decoded, Ignored):
                self._ignored(decoded)
                await stream.ack(event)
                return
            cid = decoded.customer_id
            customer = self._load(EntityType.CUSTOMER, cid)
            card: EntityState | None = None
            fact = decoded.fact
            if isinstance(fact, TxFact) and fact.has_card:
                card = self._load(EntityType.CARD, fact.card_token or "")
            held_key = cid.encode()
            needs_held = decoded.kind in (Kind.TX, Kind.LABEL)
            held_before = self.held.get(held_key) if needs_held else None
            held = HeldLabels.from_bytes(held_before)
            step = on_customer_event(decoded, customer, card, held, self.lateness)
            sent = [
                await self._send(
                    self.merchant_topic, forward.merchant_id, encode_forward(forward), span
                )
                for forward in step.forwards
            ]
            if needs_held:
                after = held.to_bytes() if held else None
                if after != held_before:
                    # A label released with its transaction's forward must stay held in the
                    # changelog (sent in the background) until Kafka has the forward: else a
                    # crash replays the transaction, a duplicate, with nothing left to forward.
                    await asyncio.gather(*sent)
                    if after is None:
                        self.held.pop(held_key, None)
                    else:
                        self.held[held_key] = after
            await self._finish(stream, event, step, message, decoded)

    async def _merchant_agent(self, stream: StreamT[bytes]) -> None:
        manual = _manual_acks(stream)
        async for event in manual.events():
            message = event.message
            self._count_consumed(message.topic)
            with self._span(message):
                try:
                    forward = decode_forward(event.value, (event.key or b"").decode())
                except BAD_INPUT as exc:
                    await self._dead_letter(event, exc)
                    await manual.ack(event)
                    continue
                terminal = self._load(EntityType.TERMINAL, forward.terminal_id)
                merchant = self._load(EntityType.MERCHANT, forward.merchant_id)
                step = on_forward(forward, terminal, merchant)
                await self._finish(manual, event, step, message, forward.routed)

    # -- helpers -------------------------------------------------------------------------------

    def _load(self, entity_type: EntityType, entity_id: str) -> EntityState:
        raw = self.tables[entity_type].get(entity_id.encode())
        if raw is None:
            return EntityState(entity_type, lateness=self.lateness)
        return EntityState.from_bytes(raw)

    async def _finish(
        self,
        stream: StreamT[bytes],
        event: EventT[bytes],
        step: Step,
        message: Any,
        routed: Routed,
    ) -> None:
        """Persist the changed states, queue their hashes, ack once Redis has them."""
        position = str(_Position(message.topic, message.partition, message.offset))
        source = f"{message.topic}:{message.partition}"
        for touched in step.touched:
            kind = touched.entity_type.value
            if touched.changed:
                touched.state.applied[source] = message.offset
                self.tables[touched.entity_type][touched.entity_id.encode()] = (
                    touched.state.to_bytes()
                )
                self.status.applied[f"{kind}:applied"] += 1
                self.fm.updates.labels(self.fm.service, kind, "applied").inc()
            elif not any(t is touched.entity_type for t, _ in step.late):
                self.status.applied[f"{kind}:duplicate"] += 1
                self.fm.updates.labels(self.fm.service, kind, "duplicate").inc()
            if touched.state.version:
                self.sink.put(
                    touched.entity_type,
                    touched.entity_id,
                    hash_fields(touched, position),
                    touched.state.version,
                )
        for entity_type, exc in step.late:
            state = next(t.state for t in step.touched if t.entity_type is entity_type)
            if message.offset <= state.applied.get(source, -1):
                # read again after a crash: applied then, evicted since: a duplicate
                self.status.applied[f"{entity_type.value}:duplicate"] += 1
                self.fm.updates.labels(self.fm.service, entity_type.value, "duplicate").inc()
                continue
            self.status.count_late(entity_type, exc)
            self.fm.updates.labels(self.fm.service, entity_type.value, "late").inc()
            self.fm.late.labels(self.fm.service, entity_type.value, exc.kind).inc()
            _log.warning(
                "event too late for its windows: counted, not applied",
                entity_type=entity_type.value,
                kind=exc.kind,
                event_id=exc.event_id,
                event_time=exc.event_time.isoformat(),
                limit=exc.limit.isoformat(),
                position=position,
            )
        if step.unrouted_labels:
            self.status.unrouted_labels += step.unrouted_labels
            self.fm.unrouted_labels.labels(self.fm.service).inc(step.unrouted_labels)
        lag = (datetime.now(UTC) - event_time_of(routed.fact)).total_seconds()
        self.metrics.observe_latencies(message.topic, (lag,))

        async def ack() -> None:
            await stream.ack(event)
            self.metrics.count_processed(message.topic, 1)

        self.sink.after(ack)
        await self.sink.wait_for_room()

    async def _send(
        self, topic: Any, key: str, value: bytes, span: trace.Span
    ) -> asyncio.Future[Any]:
        """Hand the record to the producer; returns the future of Kafka's acknowledgement."""
        headers: Headers = []
        inject(headers, trace.set_span_in_context(span))
        return cast(
            "asyncio.Future[Any]",
            await topic.send(key=key.encode(), value=value, headers=headers),
        )

    def _span(self, message: Any) -> Any:
        parent = extract(_headers(message.headers))
        return self.tracer.start_as_current_span(
            f"{message.topic} process",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "kafka",
                "messaging.operation.type": "process",
                "messaging.destination.name": message.topic,
                "messaging.destination.partition.id": str(message.partition),
                "messaging.kafka.offset": message.offset,
                "messaging.consumer.group.name": self.settings.app_id,
            },
        )

    def _count_consumed(self, topic: str) -> None:
        self.status.consumed[topic] += 1
        self.metrics.count_consumed(topic, 1)

    def _ignored(self, ignored: Ignored) -> None:
        self.status.ignored[ignored.reason] += 1
        self.fm.ignored.labels(self.fm.service, ignored.reason).inc()

    async def _dead_letter(self, event: EventT[bytes], error: BaseException) -> None:
        """The original record, verbatim, to dlq.features with the runtime's headers; awaited
        (acked by Kafka) before the event is acked."""
        m = event.message
        timestamp = int(m.timestamp * 1000) if m.timestamp else int(time.time() * 1000)
        message: Message[None] = Message(
            topic=m.topic,
            partition=m.partition,
            offset=m.offset,
            timestamp=timestamp,
            key=m.key,
            raw=m.value,
            headers=tuple(_headers(m.headers)),
            value=None,
        )
        _log.warning(
            "dead-lettering a record",
            position=f"{m.topic}:{m.partition}:{m.offset}",
            error=str(error),
        )
        await self.dead_letters.publish([(message, error)])
        self.status.dead_lettered[m.topic] += 1

    # -- state of the app, for readiness and /status -------------------------------------------

    def running(self) -> bool:
        app = self.app
        return bool(app.state == "running" and not app.crashed and self.agent_failure is None)

    def crash_reason(self) -> BaseException | None:
        """Why the worker must stop: faust crashed, or one of its agents died."""
        reason: BaseException | None = self.app.crash_reason if self.app.crashed else None
        return reason or self.agent_failure

    def recovery(self) -> dict[str, Any]:
        """Where faust's table recovery stands: changelog records still to read, by partition
        (a restarted worker processes nothing before its active tables are restored)."""
        try:
            recovery = self.app.tables.recovery  # type: ignore[attr-defined]  # TableManager's
        except Exception:  # noqa: BLE001 - before the tables exist
            return {"in_recovery": None}
        return {
            "in_recovery": bool(recovery.in_recovery),
            "active_remaining": {
                f"{tp.topic}:{tp.partition}": stats.remaining
                for tp, stats in sorted(recovery.active_stats().items())
            },
        }

    def assignment(self) -> Sequence[str]:
        try:
            tps = self.app.consumer.assignment()
        except Exception:  # noqa: BLE001 - before the consumer exists
            return []
        return sorted(f"{tp.topic}:{tp.partition}" for tp in tps)
