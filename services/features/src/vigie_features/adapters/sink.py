"""The online store writer: entity hashes coalesced per key, pipelined to Redis, then acked.

The worker's agents ``put`` the new hash of every entity an event touched and hand over the
event's ack with ``after``. A flusher writes what is pending at most every ``interval_s`` (one
pipelined round trip per entity type: each has its TTL), each hash with a versioned write, so an
older version never overwrites a newer one; then it runs the acks, and only acked events have
their offsets committed. Several updates of one entity within an interval cost one write.
Redis down: the flusher retries with backoff, nothing is acked, and ``put`` makes the agents wait
once ``max_pending`` writes queue up.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta

from vigie_contracts.events.features import EntityType
from vigie_featureset import entity_key
from vigie_runtime import Backoff, get_logger
from vigie_stores import StoreError
from vigie_stores.redis import RedisStore, VersionedHash

_log = get_logger(__name__)

Ack = Callable[[], Awaitable[object]]


class FeatureSink:
    def __init__(
        self,
        store: RedisStore,
        ttls: Mapping[EntityType, timedelta],
        *,
        interval_s: float = 0.02,
        max_pending: int = 20_000,
        backoff: Backoff | None = None,
        on_flushed: Callable[[int, int, float], None] | None = None,
    ) -> None:
        self._store = store
        self._ttls = dict(ttls)
        self._interval = interval_s
        self._max_pending = max_pending
        self._backoff = backoff or Backoff(initial=0.1, cap=5.0, max_attempts=1_000_000)
        #: (written, stale, seconds) after each successful flush
        self._on_flushed = on_flushed
        self._pending: dict[tuple[EntityType, str], VersionedHash] = {}
        self._acks: list[Ack] = []
        self._room = asyncio.Event()
        self._room.set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self.written = 0
        self.stale = 0
        self.failures = 0
        self.last_error: str | None = None

    @property
    def pending(self) -> int:
        return len(self._pending)

    def put(
        self, entity_type: EntityType, entity_id: str, fields: dict[str, str], version: int
    ) -> None:
        key = (entity_type, entity_id)
        held = self._pending.get(key)
        if held is None or held.version <= version:
            self._pending[key] = VersionedHash(entity_key(entity_type, entity_id), fields, version)
        if len(self._pending) >= self._max_pending:
            self._room.clear()
            self._wake.set()

    def after(self, ack: Ack) -> None:
        """Run ``ack`` once everything put so far is in Redis."""
        self._acks.append(ack)

    async def wait_for_room(self) -> None:
        await self._room.wait()

    async def flush(self) -> None:
        """Write what is pending (retrying while Redis is unavailable), then run the acks."""
        async with self._lock:
            while self._pending or self._acks:
                batch, self._pending = self._pending, {}
                acks, self._acks = self._acks, []
                await self._write(batch)
                self._room.set()
                for ack in acks:
                    await ack()

    async def _write(self, batch: dict[tuple[EntityType, str], VersionedHash]) -> None:
        by_type: dict[EntityType, list[VersionedHash]] = {}
        for (entity_type, _), item in batch.items():
            by_type.setdefault(entity_type, []).append(item)
        attempt = 0
        while True:
            started = time.perf_counter()
            try:
                outcomes = await asyncio.gather(
                    *(
                        self._store.write_versioned_many(items, ttl=self._ttls.get(kind))
                        for kind, items in by_type.items()
                    )
                )
            except StoreError as exc:
                if not exc.retryable:
                    raise  # a rejected write is a bug, not an outage: stop the worker
                self.failures += 1
                self.last_error = str(exc)
                attempt += 1
                delay = self._backoff.delay(attempt)
                _log.warning("redis write failed, retrying", error=str(exc), retry_in_s=delay)
                await asyncio.sleep(delay)
                continue
            written = sum(o.applied for o in outcomes)
            stale = sum(len(o.stale) for o in outcomes)
            self.written += written
            self.stale += stale
            self.last_error = None
            if self._on_flushed is not None:
                self._on_flushed(written, stale, time.perf_counter() - started)
            return

    @property
    def error(self) -> BaseException | None:
        """What stopped the flusher (the worker must stop: nothing will be acked any more)."""
        task = self._task
        if task is None or not task.done() or task.cancelled():
            return None
        return task.exception()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval):
                    await self._wake.wait()
            self._wake.clear()
            await self.flush()

    async def __aenter__(self) -> FeatureSink:
        self._task = asyncio.create_task(self._run(), name="features-redis-flusher")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
