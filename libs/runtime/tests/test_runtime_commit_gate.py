"""Commit gates (commits never run ahead of a sink's durable writes) and batch spans, against
the real broker; ``SinkGate``'s translation of ``committable_offsets()`` with plain values."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

import pytest
from aiokafka import TopicPartition
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from runtime_testkit import BOOTSTRAP, producer, topics

from vigie_runtime import (
    ConsumerLoop,
    Handler,
    Message,
    SinkGate,
    raw_decoder,
)
from vigie_runtime.loop import MAX_SPAN_LINKS
from vigie_runtime.testing import (
    committed,
    eventually,
    running,
    settings_for,
)

Batch = Sequence[Message[bytes | None]]


class Gate:
    """A gate the test opens and closes: ``limit`` is the next offset it lets be committed."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.asked: list[dict[TopicPartition, int]] = []

    def __call__(self, requested: Mapping[TopicPartition, int]) -> dict[TopicPartition, int]:
        self.asked.append(dict(requested))
        if self.limit is None:
            return {}  # absent: commit as requested
        return dict.fromkeys(requested, self.limit)


# -- SinkGate: the shape of LakeWriter.committable_offsets() ----------------------------------


@dataclass
class _Sink:
    """What LakeWriter answers: {(topic, partition): last offset in a final file}, a partition
    with nothing final left out."""

    final: dict[tuple[str, int], int]

    def committable_offsets(self) -> dict[tuple[str, int], int]:
        return dict(self.final)


@dataclass
class _Rec:
    topic: str
    partition: int
    offset: int


def test_sink_gate_translates_last_final_offset_to_the_next_offset_to_commit() -> None:
    sink = _Sink({})
    gate = SinkGate(sink)
    tp0, tp1, other = TopicPartition("t", 0), TopicPartition("t", 1), TopicPartition("u", 0)
    gate.wrote([_Rec("t", 0, o) for o in range(10)] + [_Rec("t", 1, 4)])
    requested = {tp0: 10, tp1: 5, other: 7}
    # nothing final: commit nothing of t (0), and u never went to the sink: as requested
    assert gate(requested) == {tp0: 0, tp1: 0}
    sink.final = {("t", 0): 5}  # offsets 0..5 final: the next to read is 6
    assert gate(requested) == {tp0: 6, tp1: 0}
    sink.final = {("t", 0): 9, ("t", 1): 4}  # all written is final: no limit
    assert gate(requested) == {}
    # records after the last one written (not sent to the sink: duplicates, dead letters) are
    # committed too once the written ones are final
    assert gate({tp0: 15}) == {}
    gate.wrote([_Rec("t", 0, 12)])
    assert gate({tp0: 15}) == {tp0: 10}


# -- the loop with a gate, against the broker -------------------------------------------------


pytestmark_integration = pytest.mark.integration


@pytestmark_integration
async def test_withheld_offsets_stay_uncommitted_until_the_gate_opens(unique: str) -> None:
    async with topics() as factory, producer() as p:
        src = await factory.create(f"rt-gate-{unique}")
        for i in range(10):
            await p.send_raw(src, str(i).encode(), key="k")
        seen: list[int] = []

        async def handler(batch: Batch) -> None:
            seen.extend(m.offset for m in batch)

        gate = Gate(limit=3)
        settings = settings_for(BOOTSTRAP, f"t-{unique}")
        loop = ConsumerLoop(
            settings,
            topics=[src],
            handler=handler,
            producer=p,
            decoder=raw_decoder,
            commit_gate=gate,
        )

        async def offsets() -> list[int]:
            return await committed(BOOTSTRAP, settings.group_id, src.name)

        async with running(loop):
            await eventually(lambda: _true(len(seen) == 10))
            await eventually(lambda: _equals(offsets, [3]))
            # the handler succeeded for all ten, yet the commit stays where the gate says
            await asyncio.sleep(1.0)
            assert await offsets() == [3]
            assert gate.asked and max(gate.asked[-1].values()) == 10
            # a gate moving forward but still below: the commit follows it on the next batch
            gate.limit = 12
            for i in range(10, 15):
                await p.send_raw(src, str(i).encode(), key="k")
            await eventually(lambda: _true(len(seen) == 15))
            await eventually(lambda: _equals(offsets, [12]))
            # the gate opens while no record arrives: the idle poll commits what it withheld
            gate.limit = None
            await eventually(lambda: _equals(offsets, [15]))
        assert sorted(seen) == list(range(15))


@pytestmark_integration
async def test_stop_flushes_first_then_commits_what_the_gate_allows(unique: str) -> None:
    async with topics() as factory, producer() as p:
        src = await factory.create(f"rt-gstop-{unique}")
        for i in range(8):
            await p.send_raw(src, str(i).encode(), key="k")
        seen: list[int] = []

        async def handler(batch: Batch) -> None:
            seen.extend(m.offset for m in batch)

        gate = Gate(limit=0)  # nothing durable yet
        flushes: list[int] = []

        async def flush() -> None:  # what a lake's flush() does: everything becomes final
            flushes.append(len(seen))
            gate.limit = None

        settings = settings_for(BOOTSTRAP, f"t-{unique}")
        loop = ConsumerLoop(
            settings,
            topics=[src],
            handler=handler,
            producer=p,
            decoder=raw_decoder,
            commit_gate=gate,
            before_final_commit=flush,
        )
        async with running(loop):
            await eventually(lambda: _true(len(seen) == 8))
            await asyncio.sleep(0.5)
            # withheld entirely (nothing below the start offset is ever committed)
            assert await committed(BOOTSTRAP, settings.group_id, src.name) == [-1]
        assert flushes == [8]  # flushed once, at stop, after the batch
        assert await committed(BOOTSTRAP, settings.group_id, src.name) == [8]


@pytestmark_integration
async def test_stop_without_flush_keeps_the_commit_where_the_gate_is(unique: str) -> None:
    async with topics() as factory, producer() as p:
        src = await factory.create(f"rt-gkeep-{unique}")
        for i in range(8):
            await p.send_raw(src, str(i).encode(), key="k")
        seen: list[int] = []

        async def handler(batch: Batch) -> None:
            seen.extend(m.offset for m in batch)

        settings = settings_for(BOOTSTRAP, f"t-{unique}")
        loop = ConsumerLoop(
            settings,
            topics=[src],
            handler=handler,
            producer=p,
            decoder=raw_decoder,
            commit_gate=Gate(limit=5),
        )
        async with running(loop):
            await eventually(lambda: _true(len(seen) == 8))
        # the withheld 5..7 are not committed: a restart reads them again (at least once)
        assert await committed(BOOTSTRAP, settings.group_id, src.name) == [5]


@pytestmark_integration
async def test_revoke_flushes_then_commits_so_the_next_owner_reads_nothing_twice(
    unique: str,
) -> None:
    async with topics() as factory, producer() as p:
        src = await factory.create(f"rt-grev-{unique}", partitions=2)
        for i in range(20):
            await p.send_raw(src, str(i).encode(), key=f"k{i}")
        seen_a: list[int] = []
        seen_b: list[int] = []

        def handler(into: list[int]) -> Handler[bytes | None]:
            async def handle(batch: Batch) -> None:
                into.extend(m.offset for m in batch)

            return handle

        gate = Gate(limit=0)
        flushed = asyncio.Event()

        async def flush() -> None:
            gate.limit = None
            flushed.set()

        settings = settings_for(BOOTSTRAP, f"t-{unique}", session_timeout_ms=6000)
        a = ConsumerLoop(
            settings,
            topics=[src],
            handler=handler(seen_a),
            producer=p,
            decoder=raw_decoder,
            commit_gate=gate,
            before_final_commit=flush,
        )
        b = ConsumerLoop(
            settings,
            topics=[src],
            handler=handler(seen_b),
            producer=p,
            decoder=raw_decoder,
        )
        async with running(a):
            await eventually(lambda: _true(len(seen_a) == 20))
            await asyncio.sleep(0.5)
            assert await committed(BOOTSTRAP, settings.group_id, src.name, 2) == [-1, -1]
            async with running(b):
                # b joins: a's partitions are revoked (all, in the eager protocol)
                await asyncio.wait_for(flushed.wait(), 30)
                await eventually(
                    lambda: _true(b._consumer is not None and bool(b._consumer.assignment())),
                    timeout_s=30,
                )
                await asyncio.sleep(1.0)
                offsets = await committed(BOOTSTRAP, settings.group_id, src.name, 2)
                assert sum(offsets) == 20
        assert seen_b == []  # nothing handled twice


# -- batch spans -------------------------------------------------------------------------------


@pytestmark_integration
async def test_batch_mode_one_span_per_batch_linked_to_the_producers(unique: str) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    upstream = TracerProvider().get_tracer("producer")
    async with topics() as factory, producer() as p:
        src = await factory.create(f"rt-bspan-{unique}")
        producer_spans: set[int] = set()
        for i in range(5):
            with upstream.start_as_current_span(f"publish {i}") as span:
                await p.send_raw(src, str(i).encode(), key="k")
                producer_spans.add(span.get_span_context().span_id)
        await p.send_raw(src, b"untraced", key="k")  # no current span: no traceparent
        got: list[Message[bytes | None]] = []
        calls: list[int] = []

        async def handler(batch: Batch) -> None:
            calls.append(len(batch))
            got.extend(batch)

        loop = ConsumerLoop(
            settings_for(BOOTSTRAP, f"t-{unique}"),
            topics=[src],
            handler=handler,
            producer=p,
            decoder=raw_decoder,
            tracer=provider.get_tracer("consumer"),
            span_per="batch",
        )
        async with running(loop):
            await eventually(lambda: _true(len(got) == 6))
    spans = [s for s in exporter.get_finished_spans() if s.name == f"{src.name} process"]
    assert len(spans) == len(calls)  # one span per batch, none per record
    assert all(s.kind is trace.SpanKind.CONSUMER for s in spans)
    counts = [s.attributes["messaging.batch.message_count"] for s in spans if s.attributes]
    assert sum(c for c in counts if isinstance(c, int)) == 6
    linked = {link.context.span_id for s in spans for link in s.links}
    assert linked == producer_spans
    # derived events continue each event's trace; the untraced one continues the batch span
    by_value = {m.value: m for m in got}
    ctx = trace.get_current_span(by_value[b"0"].context).get_span_context()
    assert ctx.span_id in producer_spans
    untraced = trace.get_current_span(by_value[b"untraced"].context).get_span_context()
    assert untraced.span_id in {s.context.span_id for s in spans}


@pytestmark_integration
async def test_batch_span_links_are_capped(unique: str) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    upstream = TracerProvider().get_tracer("producer")
    total = MAX_SPAN_LINKS + 40
    async with topics() as factory, producer() as p:
        src = await factory.create(f"rt-bcap-{unique}")
        for i in range(total):
            with upstream.start_as_current_span(f"publish {i}"):
                await p.send_raw(src, str(i).encode(), key="k")
        got: list[int] = []

        async def handler(batch: Batch) -> None:
            got.append(len(batch))

        loop = ConsumerLoop(
            settings_for(BOOTSTRAP, f"t-{unique}", batch_max_records=1000),
            topics=[src],
            handler=handler,
            producer=p,
            decoder=raw_decoder,
            tracer=provider.get_tracer("consumer"),
            span_per="batch",
        )
        async with running(loop):
            await eventually(lambda: _true(sum(got) == total))
    spans = [s for s in exporter.get_finished_spans() if s.name == f"{src.name} process"]
    assert [len(s.links) for s in spans] == [min(n, MAX_SPAN_LINKS) for n in got]
    assert max(len(s.links) for s in spans) <= MAX_SPAN_LINKS


async def test_a_gate_on_a_transactional_loop_is_refused() -> None:
    async def handler(batch: Batch) -> None:
        return None

    async with producer() as p:
        with pytest.raises(ValueError, match="transactional"):
            ConsumerLoop(
                settings_for(BOOTSTRAP, "t-x"),
                topics=["x"],
                handler=handler,
                producer=p,
                decoder=raw_decoder,
                commit_gate=Gate(None),
                transactional=p,  # type: ignore[arg-type]  # only its presence matters here
            )


async def _true(value: bool) -> bool:
    return value


async def _equals(get: Callable[[], Awaitable[list[int]]], expected: list[int]) -> bool:
    return await get() == expected
