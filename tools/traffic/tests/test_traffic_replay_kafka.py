"""The replay report's score reader against real Kafka, and ``vigie-replay report`` end to end."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from aiokafka import AIOKafkaProducer

from vigie_contracts import Envelope, encode
from vigie_contracts.events import FraudLabel, FraudScore
from vigie_contracts.events.fraud import Decision, LabelSource, LabelValue
from vigie_localstack.settings import StackSettings
from vigie_runtime.settings import KafkaSettings
from vigie_runtime.testing import topic_factory
from vigie_traffic.dataset import Transactions
from vigie_traffic.replay import map_table, write_map
from vigie_traffic.replay_cli import main
from vigie_traffic.scores import ScoresTopicMissing, read_scores

pytestmark = pytest.mark.integration

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _score(tx: str, score: float, at: datetime) -> bytes:
    payload = FraudScore(
        transaction_id=tx,
        customer_id="c",
        score=score,
        decision=Decision.APPROVE,
        model_name="m",
        model_version="1",
        scored_at=at,
    )
    return encode(Envelope.wrap(payload, producer="test", event_time=at))


async def test_scores_are_read_from_every_partition_to_the_end(
    stack: StackSettings, unique: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bootstrap = f"{stack.host}:{stack.kafka_port}"
    topic = f"test.replay.scores.{unique}"
    label = FraudLabel(
        transaction_id="1", label=LabelValue.FRAUD, source=LabelSource.DISPUTE, labelled_at=NOW
    )
    async with topic_factory(bootstrap) as topics:
        await topics.create(topic, partitions=2)
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
        await producer.start()
        try:
            sent = [
                (0, _score("1", 0.1, NOW)),
                (0, _score("1", 0.8, NOW + timedelta(seconds=1))),  # re-scored: the latest wins
                (1, _score("2", 0.3, NOW)),
                (1, _score("3", 0.6, NOW)),
                (1, _score("77", 0.9, NOW)),  # not in the map
                (0, encode(Envelope.wrap(label, producer="test", event_time=NOW))),
                (1, b"not avro"),
            ]
            for partition, value in sent:
                await producer.send_and_wait(topic, value, partition=partition)
        finally:
            await producer.stop()

        found = await read_scores(
            KafkaSettings(bootstrap_servers=bootstrap), topic, wanted={"1", "2", "3", "4"}
        )
        assert found.scores == {"1": 0.8, "2": 0.3, "3": 0.6}
        assert (found.messages, found.not_in_map) == (7, 1)
        assert (found.other_events, found.undecodable) == (1, 1)

        # the command: a map of four replayed transactions over two days, one never scored
        day = datetime(2018, 4, 1, tzinfo=UTC)
        us = [int((day + timedelta(hours=h)).timestamp() * 1e6) for h in (1, 2, 26, 27)]
        tx = Transactions(
            row=np.arange(1, 5, dtype=np.int64),
            transaction_id=np.asarray(["a", "b", "c", "d"], dtype=object),
            time_us=np.asarray(us, dtype=np.int64),
            customer_id=np.asarray(["k1", "k2", "k1", "k3"], dtype=object),
            terminal_id=np.asarray(["t", "t", "t", "t"], dtype=object),
            amount_cents=np.asarray([100, 200, 300, 400], dtype=np.int64),
            fraud=np.asarray([True, False, False, True]),
        )
        map_path = tmp_path / "run.map.parquet"
        ids = np.asarray(["1", "2", "3", "4"], dtype=object)
        write_map(map_path, map_table(tx, ids, timedelta(days=7)))
        out = tmp_path / "report.md"
        args = ["report", "--map", str(map_path), "--out", str(out), "--topic", topic,
                "--bootstrap", bootstrap]  # fmt: skip
        assert await asyncio.to_thread(main, args) == 0
        text = out.read_text(encoding="utf-8")
        assert "scored: 3" in text and "replayed but no score: 1 (of which fraud: 1)" in text
        assert "| 2018-04-01 | 2 | 1 | 1.000 | 1.000 | 0.010 |" in text
        assert "| 2018-04-02 | 1 | 0 | n/a | n/a | 0.000 |" in text
        assert "7 messages" in text

    with pytest.raises(ScoresTopicMissing):
        await read_scores(KafkaSettings(bootstrap_servers=bootstrap), f"no.such.{unique}")
    assert await asyncio.to_thread(main, args) == 2
    assert f"topic {topic} does not exist" in capsys.readouterr().err
