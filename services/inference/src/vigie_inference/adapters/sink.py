"""The scorer's background writer of ``fraud_events`` and the prediction log.

Scores are published as soon as they are computed; the slower stores are written behind, in
larger batches, by this writer. The consumer loop's commits are gated on it (``SinkGate``): an
offset is committed only once its transaction's document and prediction rows are written, so a
crash loses nothing (the transaction is scored again: its prediction rows are rewritten, its
``fraud_events`` document, if it was written, stays the first). A full queue makes ``put`` wait:
the loop slows down rather than holding unbounded work.

Each write is timed per store (``timing``, exported as ``vigie_inference_sink_seconds``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from vigie_runtime import Backoff, get_logger
from vigie_stores import StoreError

from .fraud_events import FraudEvents
from .predictions import PredictionLog, PredictionRow

_log = get_logger(__name__)


@dataclass(slots=True)
class SinkBatch:
    rows: list[PredictionRow]
    docs: list[tuple[str, int, dict[str, Any]]]
    #: (topic, partition, offset) of every record of the batch
    positions: list[tuple[str, int, int]]
    #: partition → (first, last) occurred_at scored in it
    clock: dict[int, tuple[datetime, datetime]] = field(default_factory=dict)


class SinkWriter:
    def __init__(
        self,
        events: FraudEvents,
        log: PredictionLog,
        *,
        clock_name: str,
        max_queue: int = 64,
        backoff: Backoff | None = None,
        timing: Callable[[str, float, int], None] | None = None,
    ) -> None:
        self.events = events
        self.log = log
        self._clock_name = clock_name
        self._queue: asyncio.Queue[SinkBatch] = asyncio.Queue(max_queue)
        self._durable: dict[tuple[str, int], int] = {}
        self._clock: dict[int, tuple[datetime, datetime]] = {}
        self._backoff = backoff or Backoff(initial=0.2, cap=10.0, max_attempts=1_000_000)
        self._task: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        #: called with (store, seconds, rows) after each write: where the time goes
        self._timing = timing
        self.failure: BaseException | None = None
        self.written = 0

    async def start(self) -> None:
        self._clock = await self.log.clock(self._clock_name)
        self._task = asyncio.create_task(self._run())

    async def close(self) -> None:
        await self.flush()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def put(self, batch: SinkBatch) -> None:
        if self.failure is not None:
            raise self.failure
        self._idle.clear()
        await self._queue.put(batch)

    async def flush(self) -> None:
        """Wait until everything put so far is written (or the writer failed)."""
        while not (self._queue.empty() and self._idle.is_set()):
            if self.failure is not None or self._task is None or self._task.done():
                return
            await asyncio.sleep(0.01)

    def committable_offsets(self) -> dict[tuple[str, int], int]:
        return dict(self._durable)

    def clock(self) -> dict[int, tuple[datetime, datetime]]:
        return dict(self._clock)

    async def _run(self) -> None:
        while True:
            first = await self._queue.get()
            self._idle.clear()
            batches = [first]
            while not self._queue.empty():
                batches.append(self._queue.get_nowait())
            try:
                await self._write(batches)
            except BaseException as exc:
                self.failure = exc
                _log.error("prediction sink failed", error=repr(exc))
                raise
            finally:
                if self._queue.empty():
                    self._idle.set()

    async def _write(self, batches: Sequence[SinkBatch]) -> None:
        rows = [r for b in batches for r in b.rows]
        docs = [d for b in batches for d in b.docs]
        clock = dict(self._clock)
        for b in batches:
            for p, (first, last) in b.clock.items():
                old = clock.get(p)
                clock[p] = (first, last) if old is None else (min(old[0], first), max(old[1], last))
        attempt = 0
        while True:
            try:
                await asyncio.gather(
                    self._timed("mongo", len(docs), self.events.write(docs)),
                    self._timed("cassandra", len(rows), self.log.write(rows)),
                )
                # the sweep's clock moves only over rows that are written
                changed = {p: v for p, v in clock.items() if self._clock.get(p) != v}
                if changed:
                    await self._timed(
                        "clock", len(changed), self.log.advance_clock(self._clock_name, changed)
                    )
                break
            except StoreError as exc:
                if not exc.retryable:
                    raise
                attempt += 1
                delay = self._backoff.delay(attempt)
                _log.warning("prediction sink retrying", error=str(exc), delay_s=round(delay, 2))
                await asyncio.sleep(delay)
        self._clock = clock
        self.written += len(rows)
        for b in batches:
            for topic, partition, offset in b.positions:
                key = (topic, partition)
                if offset > self._durable.get(key, -1):
                    self._durable[key] = offset

    async def _timed(self, store: str, n: int, write: Awaitable[object]) -> None:
        started = time.perf_counter()
        await write
        if self._timing is not None:
            self._timing(store, time.perf_counter() - started, n)
