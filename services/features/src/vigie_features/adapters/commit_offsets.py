"""Events faust fetched are handled before their offsets are committed: never skipped.

Three faust-streaming behaviours (0.15; upstream issues #596, #606) broke the kill -9 test about
one run in three, each traced in the restarted worker:

- **The end of recovery empties the streams' queues after events were put in them.** faust
  resumes the source partitions, seeks them to their committed offsets, then resumes its flow
  control, which empties every stream and channel queue. Events fetched between the resume and
  that point are dropped from the queues while the fetch position has moved past them: they are
  never handled (seen: a fraud label at offset 42 delivered, cleared, never acked).
- **One missing offset at the head is committed over.** ``_new_offset`` takes a single offset
  missing before the acked ones for a gap in the topic (compaction, transaction markers) and
  commits past it: the dropped event above, or one still being handled (acked after the next
  one: ours acks an ignored event at once, a handled one once Redis has its hashes), is lost
  (seen: a transaction missing from its customer's state after the restart).
- **The seek rewinds faust's bookkeeping.** Events handled during the seek are committed (the
  commit timer runs every 0.2 s); the seek then overwrites faust's record of the committed
  offsets with the values it fetched before. faust commits only a run of acked offsets starting
  at the committed one, so that partition never commits again (seen: the worker caught up,
  Kafka's committed offset of one partition stayed behind for 180 s).

Here: resuming the flow empties only the table recovery's queue; the seek never moves the
committed offset back and keeps the last offset read as the one before it (what faust's fetch
loop means by it, so a real gap at the head is recorded as one); a commit takes only the run
that starts exactly at the committed offset (real gaps filled from faust's gap record, as faust
does) and stops before the first event delivered and not acked yet. A re-fetched event is
handled twice: the entity states drop duplicates.

These are faust's private attributes: the guards check that they exist and fail the start
otherwise (a faust upgrade must be looked at; the version is pinned below 0.16).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from faust.types import TP

_CONSUMER_ATTRIBUTES = (
    "_acked",
    "_acked_index",
    "_gap",
    "_committed_offset",
    "_read_offset",
    "_unacked_messages",
    "_filter_committable_offsets",
    "_should_commit",
    "perform_seek",
    "seek",
    "seek_to_committed",
    "_add_gap",
    "_is_changelog_tp",
)


class FaustInternalsChanged(RuntimeError):
    """The installed faust lacks an attribute the guards rely on."""


def _require(obj: Any, names: Iterable[str]) -> None:
    missing = [name for name in names if not hasattr(obj, name)]
    if missing:
        raise FaustInternalsChanged(f"faust's {type(obj).__name__} has no {', '.join(missing)}")


def keep_fetched_events(flow_control: Any, tables: Any) -> None:
    """Resuming faust's flow control no longer empties the streams' and channels' queues: an
    event put in one is handled (faust's own revocation still empties them, explicitly, before
    it seeks back). The table recovery's queue is emptied as before."""
    _require(flow_control, ("_suspend", "_resume", "resume"))
    _require(tables, ("_changelog_queue",))

    def resume() -> None:
        flow_control._suspend.clear()
        flow_control._resume.set()
        if tables._changelog_queue is not None:
            tables._changelog_queue.clear()

    flow_control.resume = resume


def commit_run(acked: Sequence[int], committed: int | None, in_flight: int | None) -> list[int]:
    """The acked offsets a commit may cover: the consecutive run that starts at ``committed``
    (the next offset to read; ``None``: nothing committed yet, the run starts at the lowest
    acked) and ends before ``in_flight``, the lowest offset delivered and not acked yet.
    ``acked`` is sorted and without duplicates."""
    if not acked:
        return []
    start = acked[0] if committed is None else committed
    run: list[int] = []  # empty when the event at the committed offset is not handled yet
    for offset in acked:
        if offset != start + len(run) or (in_flight is not None and offset >= in_flight):
            break
        run.append(offset)
    return run


def lowest_in_flight(messages: Iterable[Any]) -> dict[Any, int]:
    """By topic-partition, the lowest offset of the delivered messages not acked yet."""
    out: dict[Any, int] = {}
    for message in list(messages):  # a WeakSet: copy before iterating
        if message.acked:
            continue
        tp = message.tp
        if tp not in out or message.offset < out[tp]:
            out[tp] = message.offset
    return out


def resume_point(fetched: int | None, known: int | None) -> int | None:
    """Where a partition resumes after the seek: Kafka's committed offset as fetched, unless
    faust committed further since (offsets only move forward within a worker's assignment)."""
    values = [x for x in (fetched, known) if x is not None and x >= 0]
    return max(values) if values else None


def guard_commits(consumer: Any) -> None:
    """Install the safe seek and commit-offset choice on faust's ``consumer``."""
    _require(consumer, _CONSUMER_ATTRIBUTES)

    def filter_committable_offsets(tps: Iterable[Any]) -> dict[Any, int]:
        in_flight = lowest_in_flight(consumer._unacked_messages)
        out: dict[Any, int] = {}
        for tp in tps:
            offset = _next_commit(consumer, tp, in_flight.get(tp))
            if offset is not None and consumer._should_commit(tp, offset):
                out[tp] = offset
        return out

    async def perform_seek() -> None:
        fetched: Mapping[Any, int | None] = await consumer.seek_to_committed()
        for raw, offset in fetched.items():
            tp = TP(raw.topic, raw.partition)
            if consumer._is_changelog_tp(tp):  # read by the table recovery: as faust does
                consumer._read_offset[tp] = offset if offset is not None and offset >= 0 else None
                if offset is not None:
                    consumer._committed_offset[tp] = offset or None
                continue
            at = resume_point(offset, consumer._committed_offset.get(tp))
            if at is None:
                consumer._read_offset[tp] = None
                continue
            if at != offset:
                await consumer.seek(tp, at)
            consumer._committed_offset[tp] = at
            # the last offset read, as the fetch loop keeps it: an offset missing right after it
            # is then recorded as a gap
            consumer._read_offset[tp] = at - 1 if at > 0 else None

    async def add_gap(tp: Any, offset_from: int, offset_to: int) -> None:
        # faust starts a gap one past the committed offset: one at the committed offset itself
        # (a transaction marker there) would never be filled, and the head rule would wait on it
        committed = consumer._committed_offset[tp]
        if committed is not None:
            offset_from = max(offset_from, committed)
        if offset_from <= offset_to:
            consumer._gap[tp].addi(offset_from, offset_to + 1)

    consumer._filter_committable_offsets = filter_committable_offsets
    consumer.perform_seek = perform_seek
    consumer._add_gap = add_gap


def _next_commit(consumer: Any, tp: Any, in_flight: int | None) -> int | None:
    """faust's ``_new_offset`` with ``commit_run``'s rule; the covered offsets leave the acked
    list, the rest stay for a later commit."""
    acked: list[int] = consumer._acked[tp]
    if not acked:
        return None
    gaps = consumer._gap[tp]
    if gaps:
        # offsets the fetch loop saw skipped (compaction, transaction markers) count as acked,
        # as in faust; a gap's last offset is the message whose arrival recorded it, and that
        # one counts only once it is acked itself
        highest = max(acked)
        filled = [o for iv in gaps.overlap(0, highest) for o in range(iv.begin, iv.end - 1)]
        if filled:
            acked.extend(filled)
            gaps.chop(0, max(max(filled) + 1, highest + 1))
    committed = consumer._committed_offset[tp]
    # a copy of an event read again (after a seek) acked before a commit covered the first
    stale = {o for o in acked if committed is not None and o < committed}
    consumer._acked_index[tp].difference_update(stale)
    acked[:] = sorted(set(acked) - stale)
    run = commit_run(acked, committed, in_flight)
    if not run:
        return None
    del acked[: len(run)]
    consumer._acked_index[tp].difference_update(run)
    return run[-1] + 1
