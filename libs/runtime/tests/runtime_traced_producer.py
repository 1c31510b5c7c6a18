"""Another process for the trace test: publishes one event inside a span and prints the ids of
that span (hex) as JSON on stdout."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime

from opentelemetry.sdk.trace import TracerProvider

from vigie_contracts import Envelope
from vigie_contracts.events import ServiceHeartbeat
from vigie_runtime import KafkaSettings, Producer


async def main(bootstrap: str, topic: str) -> None:
    tracer = TracerProvider().get_tracer("producer-process")
    now = datetime.now(UTC)
    payload = ServiceHeartbeat(service="p", instance="1", version="1", ready=True, sent_at=now)
    envelope = Envelope.wrap(payload, producer="producer-process", event_time=now)
    async with Producer(KafkaSettings(bootstrap_servers=bootstrap)) as producer:
        with tracer.start_as_current_span("publish") as span:
            await producer.send(topic, envelope, key="k")
            ctx = span.get_span_context()
    print(json.dumps({"trace_id": f"{ctx.trace_id:032x}", "span_id": f"{ctx.span_id:016x}"}))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
