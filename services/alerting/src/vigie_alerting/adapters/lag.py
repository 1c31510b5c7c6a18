"""Consumer lag read from Kafka itself, as lag monitors (Burrow) do: the groups' committed
offsets (admin API) against the partitions' end offsets (read-committed, so transaction markers
do not count as lag). One reading of every watched group per call."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Self

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from vigie_runtime import KafkaSettings, Retryable, get_logger

from ..handlers import GroupOffsets

_log = get_logger(__name__)


class LagReader:
    def __init__(self, kafka: KafkaSettings, *, concurrency: int = 8) -> None:
        self._admin = AIOKafkaAdminClient(**kafka.client_options())
        self._consumer = AIOKafkaConsumer(
            **kafka.client_options(), enable_auto_commit=False, isolation_level="read_committed"
        )
        self._gate = asyncio.Semaphore(concurrency)

    async def __aenter__(self) -> Self:
        await self._admin.start()
        try:
            await self._consumer.start()
        except BaseException:
            await self._admin.close()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self._consumer.stop()
        finally:
            await self._admin.close()

    async def read(self, watched: Callable[[str], bool]) -> list[GroupOffsets]:
        try:
            listed = await self._admin.list_consumer_groups()
        except KafkaError as exc:
            raise Retryable(f"cannot list consumer groups: {exc!r}") from exc
        groups = sorted({g[0] for g in listed if watched(g[0])})
        committed = await asyncio.gather(*(self._committed(g) for g in groups))
        by_group = {g: c for g, c in zip(groups, committed, strict=True) if c}
        partitions = {tp for c in by_group.values() for tp in c}
        ends = await self._ends(partitions)
        return [
            GroupOffsets(
                group=group,
                committed={(tp.topic, tp.partition): o for tp, o in offsets.items() if tp in ends},
                ends={(tp.topic, tp.partition): ends[tp] for tp in offsets if tp in ends},
            )
            for group, offsets in by_group.items()
        ]

    async def _committed(self, group: str) -> dict[TopicPartition, int]:
        async with self._gate:
            try:
                found: dict[Any, Any] = await self._admin.list_consumer_group_offsets(group)
            except KafkaError as exc:
                _log.info("group offsets not read", group=group, error=repr(exc))
                return {}
        return {tp: meta.offset for tp, meta in found.items() if meta.offset >= 0}

    async def _ends(self, partitions: set[TopicPartition]) -> dict[TopicPartition, int]:
        if not partitions:
            return {}
        try:
            found: dict[TopicPartition, int] = await self._consumer.end_offsets(list(partitions))
            return found
        except KafkaError:
            pass  # one deleted topic fails the whole request: ask topic by topic
        ends: dict[TopicPartition, int] = {}
        for topic in sorted({tp.topic for tp in partitions}):
            try:
                ends.update(
                    await self._consumer.end_offsets([tp for tp in partitions if tp.topic == topic])
                )
            except KafkaError as exc:
                _log.info("end offsets not read", topic=topic, error=repr(exc))
        return ends
