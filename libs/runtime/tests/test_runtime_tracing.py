"""One trace across processes: the consuming loop's span is a child of the producer's span."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from runtime_testkit import BOOTSTRAP, producer, topics

from vigie_contracts import Envelope, Event
from vigie_runtime import ConsumerLoop, Message
from vigie_runtime.testing import running, settings_for

pytestmark = pytest.mark.integration

PRODUCER = Path(__file__).with_name("runtime_traced_producer.py")


async def test_consumer_span_is_the_child_of_the_producer_span_of_another_process(
    unique: str,
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    async with topics() as factory, producer() as p:
        src = await factory.create(f"rt-trace-{unique}")
        sent = await asyncio.create_subprocess_exec(
            sys.executable,
            str(PRODUCER),
            BOOTSTRAP,
            src.name,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(sent.communicate(), 60)
        assert sent.returncode == 0, err.decode()
        ids = json.loads(out.decode().strip().splitlines()[-1])
        got: list[Message[Envelope[Event]]] = []
        handled = asyncio.Event()

        async def handler(batch: Sequence[Message[Envelope[Event]]]) -> None:
            got.extend(batch)
            handled.set()

        loop = ConsumerLoop(
            settings_for(BOOTSTRAP, f"t-{unique}"),
            topics=[src],
            handler=handler,
            producer=p,
            tracer=provider.get_tracer("consumer"),
        )
        async with running(loop):
            await asyncio.wait_for(handled.wait(), 20)
    spans = [s for s in exporter.get_finished_spans() if s.name == f"{src.name} process"]
    assert len(spans) == 1
    span = spans[0]
    assert span.kind is trace.SpanKind.CONSUMER
    assert f"{span.context.trace_id:032x}" == ids["trace_id"]
    assert span.parent is not None
    assert f"{span.parent.span_id:016x}" == ids["span_id"]
    assert span.parent.is_remote
    assert span.attributes is not None and span.attributes["messaging.kafka.offset"] == 0
    # the producer also wrote the trace into the envelope, for consumers that skip headers
    envelope = got[0].value
    assert envelope.traceparent is not None and ids["trace_id"] in envelope.traceparent
    # the message carries the consumer span's context: derived events continue the trace
    derived = trace.get_current_span(got[0].context).get_span_context()
    assert derived.span_id == span.context.span_id
