"""The platform's fraud scores, read back from Kafka for the replay report.

Every partition of the topic is read from its beginning to its end offset as of the start of the
read (scores arriving meanwhile wait for the next report), with no consumer group, so nothing
committed moves. A transaction scored more than once keeps its latest score (by ``scored_at``,
then by offset).
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass, field
from datetime import datetime

from aiokafka import AIOKafkaConsumer, TopicPartition

from vigie_contracts.errors import ContractError
from vigie_contracts.events import FraudScore
from vigie_contracts.serde import decode
from vigie_contracts.topics import FRAUD_SCORES
from vigie_runtime import partitions_of
from vigie_runtime.settings import KafkaSettings


class ScoresTopicMissing(Exception):
    """The scores topic does not exist (the platform never scored anything there)."""


@dataclass(slots=True)
class ScoreRead:
    scores: dict[str, float] = field(default_factory=dict)
    messages: int = 0
    other_events: int = 0  # valid envelopes of another event type
    undecodable: int = 0
    not_in_map: int = 0  # scores of transactions the map does not hold
    _at: dict[str, datetime] = field(default_factory=dict, repr=False)

    def add(self, score: FraudScore, wanted: Container[str] | None) -> None:
        tx = score.transaction_id
        if wanted is not None and tx not in wanted:
            self.not_in_map += 1
            return
        seen = self._at.get(tx)
        if seen is None or score.scored_at >= seen:
            self._at[tx] = score.scored_at
            self.scores[tx] = score.score


async def read_scores(
    settings: KafkaSettings,
    topic: str = FRAUD_SCORES.name,
    *,
    wanted: Container[str] | None = None,
    poll_timeout_ms: int = 1000,
) -> ScoreRead:
    """Scores of the transactions in ``wanted`` (every one when None) held by ``topic``."""
    partitions = await partitions_of(settings, topic)
    if not partitions:
        raise ScoresTopicMissing(f"topic {topic} does not exist")
    consumer = AIOKafkaConsumer(
        **settings.client_options(), enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    found = ScoreRead()
    try:
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        ends: dict[TopicPartition, int] = await consumer.end_offsets(tps)
        starts: dict[TopicPartition, int] = await consumer.beginning_offsets(tps)
        for tp in tps:
            consumer.seek(tp, starts[tp])
        remaining = {tp for tp in tps if starts[tp] < ends[tp]}
        while remaining:
            batches = await consumer.getmany(*remaining, timeout_ms=poll_timeout_ms)
            for tp, records in batches.items():
                for record in records:
                    if record.offset >= ends[tp]:
                        break
                    found.messages += 1
                    _take(found, record.value, wanted)
                if records and records[-1].offset + 1 >= ends[tp]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()
    return found


def _take(found: ScoreRead, value: bytes | None, wanted: Container[str] | None) -> None:
    if value is None:
        found.undecodable += 1
        return
    try:
        envelope = decode(value)
    except ContractError:
        found.undecodable += 1
        return
    if isinstance(envelope.payload, FraudScore):
        found.add(envelope.payload, wanted)
    else:
        found.other_events += 1
