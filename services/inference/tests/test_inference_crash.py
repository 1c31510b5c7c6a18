"""``kill -9`` of the learner mid-stream, then a restart: the final model state equals an
uninterrupted run's over the same label stream (no label learned twice, none skipped).

"Equals" is checked on the state, not only on behaviour: the checkpoint bytes must be the same
once two things that carry no model state are set aside (``canonical``):

- River's ``proba.Gaussian`` (one per feature and class in every Hoeffding tree leaf's
  ``GaussianSplitter``) is built with ``seed=None``, so its ``_rng`` is seeded from the OS: two
  uninterrupted runs with the same seed already differ there. Only ``Gaussian.sample()`` reads
  it; learning and predicting never do.
- pickle writes a string once per object, not per value: after a restore, the trees hold
  unpickled feature-name strings next to the ones later vectors bring, equal but distinct
  objects, so the same state pickles longer.

Both differ between runs for every River kind (the second for the linear ones too), so this test
compares the canonical form (everything else, byte for byte: one label more or less changes
it) and the predictions on a probe set. The model package can make ``to_bytes()`` canonical
itself (see the report); the comparison then becomes a plain one.
"""

from __future__ import annotations

import asyncio
import io
import os
import pickle  # noqa: S403 - the test reads back states it produced
import random
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from inference_testkit import environment, free_port
from river import proba

from vigie_contracts import Envelope, decode
from vigie_contracts.events.fraud import FraudLabel, LabelSource, LabelValue
from vigie_inference.adapters.models import ModelRegistry
from vigie_inference.adapters.predictions import PredictionLog, PredictionRow, StoredPrediction
from vigie_inference.handlers.learning import LabelIn, LearnerCore
from vigie_inference.model import from_bytes
from vigie_inference.model.base import unpack
from vigie_inference.serving import Kinds, fresh
from vigie_localstack.settings import StackSettings
from vigie_runtime import KafkaSettings, Producer
from vigie_runtime.testing import collect, eventually
from vigie_stores.cassandra import CassandraStore
from vigie_stores.mongo import MongoStore

pytestmark = [pytest.mark.integration, pytest.mark.slow]

T0 = datetime(2018, 4, 1, tzinfo=UTC)
N = 1000
DUPLICATES = 100


class _Canonical(pickle.Pickler):
    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, proba.Gaussian):
            state = {k: v for k, v in vars(obj).items() if k != "_rng"}
            return (object.__new__, (type(obj),), state)
        return NotImplemented


def _intern(obj: Any, seen: set[int]) -> None:
    if id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, dict):
        items = list(obj.items())
        obj.clear()
        for k, v in items:
            obj[sys.intern(k) if isinstance(k, str) else k] = (
                sys.intern(v) if isinstance(v, str) else v
            )
            _intern(v, seen)
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            if isinstance(v, str):
                obj[i] = sys.intern(v)
            else:
                _intern(v, seen)
    elif isinstance(obj, tuple | set | frozenset):
        for v in obj:
            _intern(v, seen)
    elif hasattr(obj, "__dict__"):
        _intern(vars(obj), seen)


def canonical(data: bytes) -> tuple[dict[str, Any], bytes]:
    """A model state without the Gaussians' OS-seeded RNGs, with one object per string."""
    header, payload = unpack(data)
    estimator = pickle.loads(payload)  # noqa: S301 - our own checkpoint
    _intern(estimator, set())
    out = io.BytesIO()
    _Canonical(out, protocol=pickle.HIGHEST_PROTOCOL).dump(estimator)
    return header, out.getvalue()


def _env(settings_env: dict[str, str]) -> dict[str, str]:
    here = str(Path(__file__).parent)
    return {**os.environ, **settings_env, "PYTHONPATH": here}


def _start(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(  # noqa: S603 - our own worker
            [sys.executable, str(Path(__file__).parent / "inference_learner_worker.py")],
            env=env,
            stdout=out,
            stderr=out,
        )


async def test_kill_minus_9_neither_relearns_nor_skips(
    stack: StackSettings, unique: str, tmp_path: Path
) -> None:
    rng = random.Random(7)
    rows = [
        PredictionRow(
            transaction_id=f"tx-{i}",
            customer_id=f"c{i % 50}",
            occurred_at=T0 + timedelta(minutes=i),
            scored_at=T0,
            score=0.0,
            model_name="cold_start",
            model_version="cold_start",
            features={
                "amount": rng.uniform(1, 300),
                "customer_nb_tx_1d": float(rng.randint(0, 9)),
            },
            bucket=T0,
        )
        for i in range(N)
    ]
    labels = [
        FraudLabel(
            transaction_id=r.transaction_id,
            customer_id=r.customer_id,
            label=LabelValue.FRAUD if r.features["amount"] > 240 else LabelValue.GENUINE,
            source=LabelSource.DISPUTE,
            labelled_at=r.occurred_at + timedelta(days=7),
        )
        for r in rows
    ]
    # re-sent labels (a labeller restart): the learner must learn each once
    labels += [labels[rng.randrange(N)] for _ in range(DUPLICATES)]
    async with environment(stack, unique) as env:
        s = env.settings
        cassandra = await CassandraStore.open(s.cassandra)
        mongo = await MongoStore.open(s.mongo)
        async with cassandra, mongo:
            log = PredictionLog(cassandra, s.keyspace, s.prediction_ttl)
            await log.ensure_schema()
            await log.write(rows)
            producer = Producer(KafkaSettings(bootstrap_servers=env.bootstrap, linger_ms=5))
            async with producer:
                await asyncio.gather(
                    *(
                        producer.send(
                            s.labels_topic,
                            Envelope.wrap(label, producer="tests", event_time=label.labelled_at),
                            key=label.transaction_id,
                        )
                        for label in labels
                    )
                )
            records = await collect(env.bootstrap, s.labels_topic, len(labels), timeout_s=30)
            assert len(records) == len(labels)

            # the uninterrupted run, in this process, over the topic as it is
            kinds = Kinds.of(s.champion, s.challengers, s.model_seed)
            core = LearnerCore({k: fresh(k, kinds.seed) for k in kinds.all}, kinds.champion)
            stored = {
                r.transaction_id: StoredPrediction(
                    r.transaction_id,
                    r.customer_id,
                    r.occurred_at,
                    dict(r.features),
                    None,
                    None,
                    None,
                )
                for r in rows
            }
            stream = []
            for record in records:
                label = decode(record.value).payload
                assert isinstance(label, FraudLabel)
                stream.append(
                    LabelIn(
                        record.topic,
                        record.partition,
                        record.offset,
                        label.transaction_id,
                        label.label == LabelValue.FRAUD,
                        label.labelled_at,
                    )
                )
            outcome = core.learn(stream, stored)
            assert len(outcome.learned) == N and outcome.duplicates == DUPLICATES
            expected = core.states()

            p = "VIGIE_INFERENCE_"
            worker_env = _env(
                {
                    f"{p}KAFKA__BOOTSTRAP_SERVERS": env.bootstrap,
                    f"{p}KAFKA__BATCH_MAX_RECORDS": "25",
                    f"{p}KAFKA__SESSION_TIMEOUT_MS": "6000",
                    f"{p}OBSERVABILITY__SERVICE_NAME": s.service_name,
                    f"{p}OBSERVABILITY__HTTP_HOST": "127.0.0.1",
                    f"{p}OBSERVABILITY__HTTP_PORT": str(free_port()),
                    f"{p}OBSERVABILITY__LOG_LEVEL": "warning",
                    f"{p}LABELS_TOPIC": s.labels_topic,
                    f"{p}DRIFT_TOPIC": s.drift_topic,
                    f"{p}CASSANDRA__CONTACT_POINTS": f'["{stack.host}"]',
                    f"{p}CASSANDRA__PORT": str(stack.cassandra_port),
                    f"{p}KEYSPACE": s.keyspace,
                    f"{p}MONGO__URL": f"mongodb://{stack.host}:{stack.mongo_port}",
                    f"{p}MONGO__DATABASE": s.mongo.database,
                    # few checkpoints (each costs a GridFS upload and a prune), one mid-stream
                    f"{p}CHECKPOINT_EVERY_LABELS": "200",
                    f"{p}CHECKPOINT_EVERY_S": "2",
                }
            )
            registry = ModelRegistry(mongo, s.models_bucket)
            worker_log = tmp_path / "learner.log"
            first = _start(worker_env, worker_log)
            try:

                async def some_learned() -> bool:
                    latest = await registry.latest()
                    return latest is not None and latest.learned >= 200

                await eventually(some_learned, timeout_s=60, every_s=0.05)
                first.send_signal(signal.SIGKILL)
                first.wait(10)
                killed_at = await registry.latest()
                assert killed_at is not None and killed_at.learned < N, "killed too late"
            finally:
                if first.poll() is None:
                    first.kill()
            second = _start(worker_env, worker_log)
            try:
                end = records[-1].offset + 1

                async def caught_up() -> bool:
                    latest = await registry.latest()
                    return latest is not None and max(latest.positions.values(), default=0) >= end

                await eventually(caught_up, timeout_s=90, every_s=0.2)
                final = await registry.latest()
                assert final is not None
                got = {kind: await registry.load(final, kind) for kind in kinds.all}
                logged = await log.get(r.transaction_id for r in rows)
            finally:
                second.send_signal(signal.SIGTERM)
                try:
                    second.wait(30)
                except subprocess.TimeoutExpired:
                    second.kill()
    assert final.learned == N, worker_log.read_text()[-3000:]
    assert final.positions == {f"{s.labels_topic}:0": end}
    # every label learned at the offset the uninterrupted run learned it at, none else
    learned = {
        (tx, fraud): offset
        for tx, p in logged.items()
        for fraud, offset in ((True, p.learned_fraud), (False, p.learned_genuine))
        if offset is not None
    }
    assert learned == {(tx, fraud): offset for tx, fraud, offset in outcome.learned}
    probe = [r.features for r in rows[::7]]
    for kind in kinds.all:
        assert canonical(got[kind]) == canonical(expected[kind]), kind
        restarted, uninterrupted = from_bytes(got[kind]), from_bytes(expected[kind])
        assert restarted.n_learned == uninterrupted.n_learned == N
        assert [restarted.predict_proba(x) for x in probe] == [
            uninterrupted.predict_proba(x) for x in probe
        ], kind
