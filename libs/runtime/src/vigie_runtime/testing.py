"""Test helpers shipped with the runtime, for the services' own integration tests.

- ``TopicFactory``: topics on a real cluster (name them with a unique part), deleted afterwards.
- ``collect``: read what a topic holds (from the beginning, no consumer group).
- ``committed``: a group's committed offsets, as another process would see them.
- ``running``: a consumer loop in a task, stopped gracefully (and its error re-raised) on exit.
- ``serving``: a whole service (``run_service``) in a task until it is ready, with an HTTP
  client on its port; stopped gracefully on exit.
- ``eventually``: poll a condition until it holds.
- ``settings_for`` / ``sample_envelope``: settings and a small valid event for a test.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from vigie_contracts import Envelope, Event, Topic
from vigie_contracts.events import ServiceHeartbeat

from .loop import ConsumerLoop
from .service import Wire, run_service
from .settings import KafkaSettings, ObservabilitySettings, ServiceSettings
from .topics import partitions_of


class TopicFactory:
    """Creates topics and deletes them on ``close``; waits until each has its leaders."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self._created: list[str] = []
        self._admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        self._started = False

    async def create(self, name: str, partitions: int = 1, **config: str) -> Topic:
        if not self._started:
            await self._admin.start()
            self._started = True
        await self._admin.create_topics([NewTopic(name, partitions, 1, topic_configs=config)])
        self._created.append(name)
        await _wait_for_leaders(self.bootstrap, name, partitions)
        return Topic(
            name=name,
            description=f"test topic {name}",
            key="test",
            owner="tests",
            partitions=partitions,
        )

    async def close(self) -> None:
        if not self._started:
            return
        try:
            existing = set(await self._admin.list_topics())
            doomed = [name for name in self._created if name in existing]
            if doomed:
                await self._admin.delete_topics(doomed)
        finally:
            await self._admin.close()


async def _wait_for_leaders(bootstrap: str, topic: str, partitions: int) -> None:
    """A just-created topic's partitions need a leader before a producer can use them."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            await consumer._client.force_metadata_update()
            found = consumer.partitions_for_topic(topic) or set()
            if len(found) == partitions:
                return
            await asyncio.sleep(0.1)
        raise TimeoutError(f"topic {topic} has no leaders after 15 s")
    finally:
        await consumer.stop()


async def collect(
    bootstrap: str, topic: str, count: int, timeout_s: float = 20.0, **options: Any
) -> list[Any]:
    """The first ``count`` records of ``topic`` (all partitions), or fewer after ``timeout_s``."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        **options,
    )
    await consumer.start()
    found: list[Any] = []
    try:
        deadline = time.monotonic() + timeout_s
        while len(found) < count and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=200)
            for records in batches.values():
                found.extend(records)
    finally:
        await consumer.stop()
    return found[:count] if len(found) > count else found


async def committed(bootstrap: str, group_id: str, topic: str, partitions: int = 1) -> list[int]:
    """The committed offset of each partition (-1: none), read by a separate client."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group_id)
    finally:
        await admin.close()
    by_partition = {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic}
    return [by_partition.get(p, -1) for p in range(partitions)]


async def topic_partitions(bootstrap: str, topic: str, wait_s: float = 5.0) -> list[TopicPartition]:
    """The partitions of ``topic``, waiting briefly for one that was just created."""
    settings = KafkaSettings(bootstrap_servers=bootstrap)
    deadline = time.monotonic() + wait_s
    while not (found := await partitions_of(settings, topic)):
        if time.monotonic() > deadline:
            raise TimeoutError(f"topic {topic} has no partitions (provision it first)")
        await asyncio.sleep(0.1)
    return [TopicPartition(topic, p) for p in found]


async def park_group_at_end(bootstrap: str, group_id: str, topics: Iterable[str]) -> None:
    """Commit the current end of every partition of ``topics`` for ``group_id``: a new group
    starts there, not at the records earlier runs left on shared topics."""
    tps = [tp for topic in topics for tp in await topic_partitions(bootstrap, topic)]
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group_id, enable_auto_commit=False
    )
    await consumer.start()
    try:
        consumer.assign(tps)
        await consumer.commit(dict(await consumer.end_offsets(tps)))
    finally:
        await consumer.stop()


@asynccontextmanager
async def topic_factory(bootstrap: str) -> AsyncIterator[TopicFactory]:
    factory = TopicFactory(bootstrap)
    try:
        yield factory
    finally:
        await factory.close()


@asynccontextmanager
async def running(loop: ConsumerLoop[Any], start_timeout_s: float = 15) -> AsyncIterator[None]:
    """Run ``loop`` in a task; on exit stop it gracefully and re-raise what it raised."""
    task = asyncio.create_task(loop.run())
    try:
        await asyncio.wait_for(loop.started.wait(), start_timeout_s)
        yield
    finally:
        loop.stop()
        await asyncio.wait_for(task, 30)


@asynccontextmanager
async def serving(
    settings: ServiceSettings, wire: Wire, *, ready_timeout_s: float = 60
) -> AsyncIterator[httpx.AsyncClient]:
    """The service of ``wire`` under ``run_service`` in a task, once ``/health/ready`` answers
    200 (what the service raised, if it stops first); yields a client of its HTTP port. On exit
    the service is stopped gracefully and what it raised is re-raised."""
    stop = asyncio.Event()
    task = asyncio.create_task(run_service(settings, wire, stop=stop))
    base = f"http://127.0.0.1:{settings.observability.http_port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:

            async def ready() -> bool:
                if task.done():
                    task.result()  # raises what the service raised
                try:
                    return (await client.get("/health/ready")).status_code == 200
                except httpx.TransportError:
                    return False

            await eventually(ready, timeout_s=ready_timeout_s, every_s=0.2)
            yield client
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)


async def eventually(
    check: Callable[[], Awaitable[bool]], timeout_s: float = 20.0, every_s: float = 0.1
) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s")
        await asyncio.sleep(every_s)


def settings_for(bootstrap: str, service: str, **kafka: Any) -> ServiceSettings:
    """Settings of a service named ``service`` (give it a unique name: it is the group id)."""
    return ServiceSettings(
        kafka=KafkaSettings(bootstrap_servers=bootstrap, **kafka),
        observability=ObservabilitySettings(service_name=service),
    )


def sample_envelope(i: int = 0, *, event_id: str | None = None) -> Envelope[Event]:
    """A small valid event (a service heartbeat) stamped now."""
    now = datetime.now(UTC)
    payload = ServiceHeartbeat(
        service="tests", instance=f"i-{i}", version="1", ready=True, sent_at=now
    )
    return Envelope.wrap(payload, producer="tests", event_time=now, event_id=event_id)
