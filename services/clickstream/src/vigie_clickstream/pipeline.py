"""The pipeline's batch handler: raw topic → validated, enriched, deduplicated → stores.

Per batch (records already decoded and checked by ``adapters.codec.click_decoder``; bad ones
were dead-lettered by the loop), in this order so that a retry after any failure is harmless:

1. drop re-deliveries: ids seen in this batch or in recent batches (in memory);
2. enrich (user agent families, cached);
3. Cassandra ``clickstream_events`` (upserts by primary key), the lake's raw zone, and the
   enriched events to ``clickstream.events`` — all acknowledged;
4. sessions, per partition: load the open ones from Redis, fold the batch in, write the closed
   ones (Cassandra ``clickstream_sessions`` and ``clickstream.sessions``), then save the state.
   Saving last means a failure before it leaves Redis as it was and the retry recomputes the
   same summaries (deterministic session ids), so nothing is lost or counted twice;
5. only then remember the ids: the loop commits the offsets when this returns.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Counter, Histogram

from vigie_contracts import Envelope, encode
from vigie_contracts.events import SessionSummary
from vigie_contracts.topics import CLICKSTREAM_EVENTS, CLICKSTREAM_SESSIONS
from vigie_runtime import Message, Metrics, Producer, SinkGate
from vigie_runtime.headers import EVENT_ID, EVENT_TYPE, SCHEMA_VERSION
from vigie_runtime.producer import translate
from vigie_stores.lake import LakeWriter, RawRecord

from .adapters.codec import encode_click
from .adapters.enrich import UserAgents
from .adapters.session_state import SessionState
from .adapters.tables import ClickstreamTables, session_row
from .handlers.events import Click, click_row
from .handlers.sessions import SessionEvent, sessionize, summary_fields
from .settings import ClickstreamSettings

PRODUCER = "clickstream"


class RecentIds:
    """The last ``size`` event ids stored: a re-delivery is skipped without touching a store."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._ids: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._ids

    def add_all(self, ids: Sequence[str]) -> None:
        if self.size == 0:
            return
        for event_id in ids:
            self._ids[event_id] = None
        while len(self._ids) > self.size:
            self._ids.popitem(last=False)


@dataclass
class PipelineMetrics:
    duplicates: Counter
    late: Counter
    sessions: Counter
    stored_latency: Histogram

    @classmethod
    def on(cls, metrics: Metrics) -> PipelineMetrics:
        r = metrics.registry
        return cls(
            duplicates=Counter(
                "vigie_clickstream_duplicates_total", "Re-delivered events skipped", registry=r
            ),
            late=Counter(
                "vigie_clickstream_late_events_total",
                "Events older than their user's open session by more than the gap",
                registry=r,
            ),
            sessions=Counter(
                "vigie_clickstream_sessions_closed_total", "Session summaries emitted", registry=r
            ),
            stored_latency=Histogram(
                "vigie_clickstream_stored_latency_seconds",
                "Event time (collector: receipt) to stored in Cassandra",
                buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
                registry=r,
            ),
        )


class Pipeline:
    def __init__(
        self,
        settings: ClickstreamSettings,
        *,
        tables: ClickstreamTables,
        producer: Producer,
        sessions: SessionState,
        metrics: Metrics,
        lake: LakeWriter | None = None,
        lake_gate: SinkGate | None = None,
        user_agents: UserAgents | None = None,
        events_topic: str = CLICKSTREAM_EVENTS.name,
        sessions_topic: str = CLICKSTREAM_SESSIONS.name,
    ) -> None:
        self.settings = settings
        self.tables = tables
        self.producer = producer
        self.sessions = sessions
        self.lake = lake
        self.lake_gate = lake_gate
        self.user_agents = user_agents or UserAgents(settings.pipeline.user_agent_cache)
        self.events_topic = events_topic
        self.sessions_topic = sessions_topic
        self.recent = RecentIds(settings.pipeline.recent_ids)
        self.metrics = PipelineMetrics.on(metrics)
        self.stored = 0
        #: (event time → stored) latencies of the last batches, for the benchmark
        self.latencies: list[float] = []
        self.keep_latencies = False

    async def handle(self, batch: Sequence[Message[Click]]) -> None:
        fresh: list[Message[Click]] = []
        seen: set[str] = set()
        for message in batch:
            event_id = message.value.event_id
            if event_id in seen or event_id in self.recent:
                continue
            seen.add(event_id)
            fresh.append(message)
        self.metrics.duplicates.inc(len(batch) - len(fresh))
        clicks = [self._enrich(m.value) for m in fresh]
        now = datetime.now(UTC)
        await asyncio.gather(
            self.tables.write_events([click_row(c, now) for c in clicks]),
            self._lake(fresh),
            self._publish(clicks, fresh),
        )
        stored_at = time.time()
        latencies = [stored_at - c.occurred_at.timestamp() for c in clicks]
        for value in latencies:
            self.metrics.stored_latency.observe(value)
        if self.keep_latencies:
            self.latencies.extend(latencies)
        await self._sessions(fresh, clicks)
        self.recent.add_all([c.event_id for c in clicks])
        self.stored += len(clicks)

    def _enrich(self, click: Click) -> Click:
        if click.device_family or click.browser_family or not click.user_agent:
            return click
        families = self.user_agents.families(click.user_agent)
        return click.enriched(
            device_family=families.device, browser_family=families.browser, os_family=families.os
        )

    async def _lake(self, messages: Sequence[Message[Click]]) -> None:
        if self.lake is None or not messages:
            return
        ingest = datetime.now(UTC)
        records = [
            RawRecord(
                topic=m.topic,
                partition=m.partition,
                offset=m.offset,
                key=m.key,
                value=m.raw,
                event_time=m.value.occurred_at,
                ingest_time=ingest,
                headers=m.headers,
            )
            for m in messages
        ]
        await self.lake.write(records)
        if self.lake_gate is not None:
            self.lake_gate.wrote(records)

    async def _publish(self, clicks: Sequence[Click], messages: Sequence[Message[Click]]) -> None:
        if not self.settings.pipeline.publish_events or not clicks:
            return
        futures = [
            await self.producer.enqueue(
                self.events_topic,
                encode_click(click, PRODUCER),
                key=click.user_id,
                headers=[
                    (EVENT_TYPE, b"clickstream_event"),
                    (SCHEMA_VERSION, b"1"),
                    (EVENT_ID, click.event_id.encode()),
                ],
                context=message.context,
            )
            for click, message in zip(clicks, messages, strict=True)
        ]
        await _acked(futures)

    async def _sessions(self, messages: Sequence[Message[Click]], clicks: Sequence[Click]) -> None:
        by_partition: dict[int, list[SessionEvent]] = {}
        for message, click in zip(messages, clicks, strict=True):
            by_partition.setdefault(message.partition, []).append(
                SessionEvent(
                    user_id=click.user_id,
                    event_id=click.event_id,
                    name=click.name,
                    at_us=_micros(click.occurred_at),
                    offset=message.offset,
                    device_family=click.device_family,
                )
            )
        await asyncio.gather(*(self._partition(p, evs) for p, evs in by_partition.items()))

    async def _partition(self, partition: int, events: list[SessionEvent]) -> None:
        cfg = self.settings.sessions
        gap_us = _td_us(cfg.inactivity_gap)
        lateness_us = _td_us(cfg.allowed_lateness)
        state, watermark = await self.sessions.load(partition, (e.user_id for e in events))
        newest = max(e.at_us for e in events)
        horizon = max(watermark, newest - lateness_us) - gap_us
        idle = await self.sessions.idle_before(partition, horizon, state)
        result = sessionize(
            state,
            events,
            watermark_us=watermark,
            gap_us=gap_us,
            lateness_us=lateness_us,
            idle=idle,
            keep_ids=cfg.recent_ids,
        )
        self.metrics.late.inc(result.late)
        if result.closed:
            summaries = [summary_fields(s) for s in result.closed]
            await asyncio.gather(
                self.tables.write_sessions([session_row(f) for f in summaries]),
                self._publish_sessions(summaries),
            )
            self.metrics.sessions.inc(len(summaries))
        await self.sessions.save(partition, result.open, result.gone, result.watermark_us)

    async def _publish_sessions(self, summaries: list[dict[str, Any]]) -> None:
        futures = []
        for fields in summaries:
            payload = SessionSummary(**fields)
            envelope = Envelope.wrap(
                payload,
                producer=PRODUCER,
                event_time=payload.ended_at,
                # one id per session: a re-emitted summary is the same event to its consumers
                event_id=payload.session_id,
            )
            futures.append(
                await self.producer.enqueue(
                    self.sessions_topic,
                    encode(envelope),
                    key=payload.user_id,
                    headers=[
                        (EVENT_TYPE, b"session_summary"),
                        (SCHEMA_VERSION, str(payload.SCHEMA_VERSION).encode()),
                        (EVENT_ID, payload.session_id.encode()),
                    ],
                )
            )
        await _acked(futures)


async def _acked(futures: list[asyncio.Future[Any]]) -> None:
    results = await asyncio.gather(*futures, return_exceptions=True)
    failed = [r for r in results if isinstance(r, BaseException)]
    if failed:
        raise translate(failed[0]) from failed[0]


def _micros(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


def _td_us(delta: Any) -> int:
    return int(delta.total_seconds() * 1_000_000)
