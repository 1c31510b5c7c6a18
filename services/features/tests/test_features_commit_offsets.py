"""What faust may commit, and the seek at the end of recovery (pure: a stand-in consumer with
faust's bookkeeping attributes; the kill -9 test runs the real one)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest
from faust.types import TP
from intervaltree import IntervalTree  # type: ignore[import-untyped]  # faust's own dependency
from mode.utils.queues import FlowControlEvent, FlowControlQueue

from vigie_features.adapters.commit_offsets import (
    FaustInternalsChanged,
    commit_run,
    guard_commits,
    keep_fetched_events,
    lowest_in_flight,
    resume_point,
)

SRC = TP("payments.transactions", 0)
LOG = TP("features-customers-changelog", 0)


def test_the_run_starts_at_the_committed_offset() -> None:
    assert commit_run([5, 6, 7], committed=5, in_flight=None) == [5, 6, 7]
    assert commit_run([5, 6, 8, 9], committed=5, in_flight=None) == [5, 6]
    # faust commits over one missing offset at the head (upstream #606): event 5 is still
    # being handled, or was never delivered
    assert commit_run([6, 7], committed=5, in_flight=None) == []
    assert commit_run([7, 8], committed=None, in_flight=None) == [7, 8]
    assert commit_run([], committed=3, in_flight=None) == []


def test_the_run_stops_before_an_event_in_flight() -> None:
    assert commit_run([5, 6, 7, 8], committed=5, in_flight=7) == [5, 6]
    assert commit_run([5, 6], committed=5, in_flight=5) == []
    assert commit_run([5, 6], committed=5, in_flight=9) == [5, 6]
    # nothing committed yet: only the events in flight tell where the partition starts
    assert commit_run([1, 2], committed=None, in_flight=0) == []


@dataclass
class _Message:
    tp: TP
    offset: int
    acked: bool = False


def test_lowest_in_flight_ignores_acked_messages() -> None:
    other = TP("fraud.labels", 2)
    messages = [
        _Message(SRC, 9),
        _Message(SRC, 4, acked=True),
        _Message(SRC, 7),
        _Message(other, 3),
    ]
    assert lowest_in_flight(messages) == {SRC: 7, other: 3}


def test_resume_point_never_goes_back() -> None:
    assert resume_point(fetched=172, known=176) == 176  # committed during the seek
    assert resume_point(fetched=180, known=176) == 180  # another member committed further
    assert resume_point(fetched=None, known=None) is None
    assert resume_point(fetched=None, known=12) == 12
    assert resume_point(fetched=-1001, known=None) is None


class _Consumer:
    """The attributes of faust's Consumer the guard uses, with faust's defaults."""

    def __init__(self, committed: dict[TP, int | None]) -> None:
        self._acked: defaultdict[TP, list[int]] = defaultdict(list)
        self._acked_index: defaultdict[TP, set[int]] = defaultdict(set)
        self._gap: defaultdict[TP, IntervalTree] = defaultdict(IntervalTree)
        self._committed_offset: defaultdict[TP, int | None] = defaultdict(lambda: None)
        self._read_offset: defaultdict[TP, int | None] = defaultdict(lambda: None)
        self._unacked_messages: list[_Message] = []
        self.kafka_committed = dict(committed)
        self.seeks: list[tuple[TP, int]] = []
        self.during_fetch: Any = None

    def _filter_committable_offsets(self, tps: Any) -> dict[TP, int]:
        raise AssertionError("replaced by the guard")

    def _should_commit(self, tp: TP, offset: int) -> bool:
        committed = self._committed_offset[tp]
        return committed is None or bool(offset) and offset > committed

    async def perform_seek(self) -> None:
        raise AssertionError("replaced by the guard")

    async def seek(self, tp: TP, offset: int) -> None:
        self.seeks.append((tp, offset))
        self._read_offset[tp] = offset

    async def seek_to_committed(self) -> dict[TP, int | None]:
        fetched = dict(self.kafka_committed)
        if self.during_fetch is not None:
            self.during_fetch()  # what the commit timer does meanwhile
        return fetched

    async def _add_gap(self, tp: TP, offset_from: int, offset_to: int) -> None:
        raise AssertionError("replaced by the guard")

    def _is_changelog_tp(self, tp: TP) -> bool:
        return tp.topic.endswith("-changelog")

    def ack(self, tp: TP, *offsets: int) -> None:
        for offset in offsets:
            self._acked[tp].append(offset)
            self._acked_index[tp].add(offset)


def _guarded(committed: dict[TP, int | None]) -> Any:
    consumer = _Consumer(committed)
    guard_commits(consumer)
    return consumer


def test_missing_faust_internals_fail_the_start() -> None:
    consumer = _Consumer({})
    del consumer._read_offset
    with pytest.raises(FaustInternalsChanged, match="_read_offset"):
        guard_commits(consumer)


def test_resuming_the_flow_keeps_what_the_streams_were_given() -> None:
    """faust's resume emptied the stream queues after events fetched past the seek were put
    in them: dropped, never handled (a fraud label, in the kill -9 test)."""
    flow = FlowControlEvent(initially_suspended=True)
    stream_queue: FlowControlQueue[str] = FlowControlQueue(flow_control=flow, clear_on_resume=True)
    changelog_queue: FlowControlQueue[str] = FlowControlQueue(
        flow_control=flow, clear_on_resume=True
    )
    tables = SimpleNamespace(_changelog_queue=changelog_queue)
    keep_fetched_events(flow, tables)
    stream_queue.put_nowait("labels:1:42")
    changelog_queue.put_nowait("stale changelog record")
    flow.resume()
    assert flow.is_active()
    assert stream_queue.qsize() == 1
    assert changelog_queue.qsize() == 0
    flow.suspend()
    assert not flow.is_active()
    flow.clear()  # faust's revocation still empties them
    assert stream_queue.qsize() == 0


async def test_a_commit_during_the_seek_is_not_rewound() -> None:
    """The hang seen in the kill -9 test: faust's seek put the committed offset back to the
    value fetched before a commit, and the partition never committed again."""
    consumer = _guarded({SRC: 172, LOG: None})

    def commit_timer() -> None:
        consumer._committed_offset[SRC] = 176

    consumer.during_fetch = commit_timer
    await consumer.perform_seek()
    assert consumer._committed_offset[SRC] == 176
    assert consumer.seeks == [(SRC, 176)]  # the events before it are handled: no re-read
    assert consumer._read_offset[SRC] == 175
    assert consumer._read_offset[LOG] is None
    consumer.ack(SRC, 176, 177)
    assert consumer._filter_committable_offsets([SRC]) == {SRC: 178}


async def test_offsets_below_the_committed_one_are_dropped_not_waited_for() -> None:
    """An event read again after the seek, acked once a commit had covered its first copy."""
    consumer = _guarded({SRC: 172})
    await consumer.perform_seek()
    consumer.ack(SRC, 172)
    consumer._committed_offset[SRC] = 173  # the commit of the first copy lands
    consumer.ack(SRC, 173, 174)
    assert consumer._filter_committable_offsets([SRC]) == {SRC: 175}
    assert consumer._acked[SRC] == [] and consumer._acked_index[SRC] == set()


async def test_the_seek_resumes_from_kafkas_offset_when_it_is_further() -> None:
    consumer = _guarded({SRC: 40})
    consumer._committed_offset[SRC] = 12  # before a rebalance gave the partition to another
    await consumer.perform_seek()
    assert consumer.seeks == []  # seek_to_committed itself moved to 40
    assert (consumer._committed_offset[SRC], consumer._read_offset[SRC]) == (40, 39)


async def test_commits_wait_for_the_head_and_for_events_in_flight() -> None:
    consumer = _guarded({SRC: 10})
    await consumer.perform_seek()
    consumer.ack(SRC, 11, 12)  # 10 is still being handled
    consumer._unacked_messages = [_Message(SRC, 10)]
    assert consumer._filter_committable_offsets([SRC]) == {}
    consumer._unacked_messages = []
    consumer.ack(SRC, 10)
    assert consumer._filter_committable_offsets([SRC]) == {SRC: 13}
    assert consumer._acked[SRC] == [] and consumer._acked_index[SRC] == set()


async def test_a_gap_at_the_committed_offset_is_filled_but_not_the_message_after_it() -> None:
    """A transaction marker at the committed offset: the fetch loop, reading from the last
    offset before it, records the gap; the message that revealed it counts once acked."""
    consumer = _guarded({SRC: 20})
    await consumer.perform_seek()
    # what faust's fetch loop does on reading offset 21 after the last one read, 19
    r_offset = consumer._read_offset[SRC]
    assert r_offset == 19
    await consumer._add_gap(SRC, r_offset + 1, 21)
    consumer.ack(SRC, 22)  # 21 itself not acked yet
    assert consumer._filter_committable_offsets([SRC]) == {SRC: 21}
    consumer._committed_offset[SRC] = 21  # what faust records after that commit
    consumer.ack(SRC, 21)
    assert consumer._filter_committable_offsets([SRC]) == {SRC: 23}
