"""The commit-time flush waits for every record queued before it (pure: a stand-in buffer)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from vigie_features.adapters.changelog_flush import ChangelogNotFlushed, drain_before_commit


class _Buffer:
    """faust's ProducerBuffer as the adapter sees it: put, flush, should_stop."""

    def __init__(self) -> None:
        self.queued: list[asyncio.Future[Any]] = []
        self.should_stop = False
        self.own_flushes = 0

    def put(self, fut: asyncio.Future[Any]) -> None:
        self.queued.append(fut)

    async def flush(self) -> None:
        self.own_flushes += 1


async def test_flush_waits_for_what_was_queued_before_it_not_after() -> None:
    buffer = _Buffer()
    drain_before_commit(buffer)
    loop = asyncio.get_running_loop()
    first, second = loop.create_future(), loop.create_future()
    buffer.put(first)
    buffer.put(second)
    flushing = asyncio.ensure_future(buffer.flush())
    await asyncio.sleep(0.15)  # faust's own flush gave up after 100 ms without a send
    assert not flushing.done()
    later = loop.create_future()
    buffer.put(later)  # queued during the flush: a later event's, not waited for
    first.set_result(None)
    await asyncio.sleep(0)
    assert not flushing.done()
    second.set_result(None)
    await asyncio.wait_for(flushing, 1)
    assert buffer.queued == [first, second, later] and buffer.own_flushes == 0


async def test_a_failed_record_fails_the_flush_and_the_next_ones() -> None:
    buffer = _Buffer()
    drain_before_commit(buffer)
    fut = asyncio.get_running_loop().create_future()
    buffer.put(fut)
    fut.set_exception(ConnectionError("broker gone"))
    await asyncio.sleep(0)
    with pytest.raises(ChangelogNotFlushed, match="1 changelog records failed"):
        await buffer.flush()
    with pytest.raises(ChangelogNotFlushed):
        await buffer.flush()


async def test_a_record_never_acknowledged_times_the_flush_out() -> None:
    buffer = _Buffer()
    drain_before_commit(buffer, timeout_s=0.05)
    buffer.put(asyncio.get_running_loop().create_future())
    with pytest.raises(ChangelogNotFlushed, match="1 of 1 changelog records not acknowledged"):
        await buffer.flush()


async def test_a_stopping_buffer_flushes_the_faust_way() -> None:
    buffer = _Buffer()
    drain_before_commit(buffer)
    buffer.put(asyncio.get_running_loop().create_future())
    buffer.should_stop = True
    await asyncio.wait_for(buffer.flush(), 1)
    assert buffer.own_flushes == 1
