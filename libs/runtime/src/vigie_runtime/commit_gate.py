"""Commit gates: keep a consumer's committed offsets behind what a sink has made durable.

Some sinks acknowledge a write before it is durable where readers will find it: the lake's
``LakeWriter`` buffers records in an open Parquet file that becomes final only when it rolls
(size, age) or on ``flush``/``close``. Committing a batch's offsets as soon as the handler
returned would, after a crash, lose the records of the open file: Kafka would not give them
again. A ``ConsumerLoop`` given a ``commit_gate`` asks it, before each commit, how far it may go.

The contract of a gate (a plain callable):

- it receives the offsets the loop wants to commit, ``{TopicPartition: next offset to read}``
  (Kafka's commit semantic: the offset of the last record handled, plus one);
- it answers ``{TopicPartition: highest offset that may be committed}`` in the same semantic;
- the loop commits ``min(requested, answer)`` per partition; **a partition absent from the
  answer is committed as requested** (the gate has no stake in it: nothing of it is buffered);
- the loop keeps what it withheld pending, and asks again after the next batch, on an idle
  poll, before a revoke and at shutdown; it never commits an offset below what it already
  committed (or below where it started reading the partition);
- it is called on the event loop, between batches: it must be quick and must not block.

``SinkGate`` adapts a sink that reports ``committable_offsets()`` the way ``LakeWriter`` does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

from aiokafka import TopicPartition

#: ``{partition: offset the loop wants to commit}`` → ``{partition: offset it may commit}``
CommitGate = Callable[[Mapping[TopicPartition, int]], Mapping[TopicPartition, int]]


class _Positioned(Protocol):
    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...


class _Durable(Protocol):
    def committable_offsets(self) -> Mapping[tuple[str, int], int]: ...


class SinkGate:
    """The commit gate of a sink with ``committable_offsets()`` (e.g. ``LakeWriter``).

    The sink answers ``{(topic, partition): last offset in a final file}`` (last written, not
    next to read) and leaves out a partition with nothing final yet. That alone cannot tell
    "everything of this partition is final" from "the records after it are still buffered",
    nor a partition the sink never saw (the handler filtered or dead-lettered its records),
    so the owner reports what it wrote with ``wrote()`` once the sink accepted it:

    - a partition never written to the sink: absent from the answer (commit as requested);
    - everything written is final (``committable == last written``): absent too, so records
      after it that did not go to the sink (duplicates, dead letters) are committed as well;
    - otherwise: ``committable + 1`` (``0`` when nothing is final: the loop then commits nothing).
    """

    def __init__(self, sink: _Durable) -> None:
        self._sink = sink
        self._written: dict[tuple[str, int], int] = {}

    def wrote(self, records: Iterable[_Positioned]) -> None:
        """Note records the sink accepted (call it after the sink's write returned)."""
        written = self._written
        for r in records:
            key = (r.topic, r.partition)
            if r.offset > written.get(key, -1):
                written[key] = r.offset

    def __call__(self, requested: Mapping[TopicPartition, int]) -> dict[TopicPartition, int]:
        final = self._sink.committable_offsets()
        allowed: dict[TopicPartition, int] = {}
        for tp in requested:
            key = (tp.topic, tp.partition)
            last_written = self._written.get(key)
            if last_written is None:
                continue
            last_final = final.get(key, -1)
            if last_final >= last_written:
                continue
            allowed[tp] = last_final + 1
        return allowed


__all__ = ["CommitGate", "SinkGate"]
