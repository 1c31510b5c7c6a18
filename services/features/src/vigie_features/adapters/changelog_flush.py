"""Offsets committed only after the changelog records of the events they cover are in Kafka.

faust commits a partition's offsets after ``producer.flush()``, whose buffer flush
(``ProducerBuffer.flush_atmost``) returns as soon as no record went out for 100 ms, even with
records still queued. Under load (a broker slow to take a batch) an offset could therefore be
committed while its event's table writes were still in the buffer: a ``kill -9`` then lost them,
and the restarted worker resumed after the offset (seen once: a refund missing from its
customer's state). Here the buffer's flush waits, instead, until every record queued before it
was called is acknowledged by Kafka; an event is acknowledged after its table writes were queued,
and the offsets are chosen before the flush, so they cover nothing unsent.
"""

from __future__ import annotations

import asyncio
from typing import Any

DEFAULT_FLUSH_TIMEOUT_S = 120.0


class ChangelogNotFlushed(RuntimeError):
    """Records queued before a commit were not acknowledged in time: the commit must not happen."""


def drain_before_commit(buffer: Any, timeout_s: float = DEFAULT_FLUSH_TIMEOUT_S) -> None:
    """Make faust's ``ProducerBuffer`` ``buffer`` track what it is given and flush it all.

    A record that failed (its future holds the error) or a flush past ``timeout_s`` raises, so
    the commit fails and the worker stops: the events are read again after the last good commit.
    """
    outstanding: set[asyncio.Future[Any]] = set()
    put, stopping_flush = buffer.put, buffer.flush

    failures: list[BaseException] = []

    def settled(fut: asyncio.Future[Any]) -> None:
        outstanding.discard(fut)
        if not fut.cancelled() and (error := fut.exception()) is not None:
            failures.append(error)

    def tracked_put(fut: asyncio.Future[Any]) -> None:
        outstanding.add(fut)
        fut.add_done_callback(settled)
        put(fut)

    async def flush() -> None:
        if buffer.should_stop:  # stopping: its sender is gone, faust's own flush says so
            await stopping_flush()
            return
        waiting = list(outstanding)
        if waiting:
            _, pending = await asyncio.wait(waiting, timeout=timeout_s)
            if pending:
                raise ChangelogNotFlushed(
                    f"{len(pending)} of {len(waiting)} changelog records not acknowledged by "
                    f"Kafka after {timeout_s:.0f} s"
                )
        if failures:
            raise ChangelogNotFlushed(
                f"{len(failures)} changelog records failed"
            ) from failures[0]

    buffer.put = tracked_put
    buffer.flush = flush
