"""Pure logic of the inference service: decisions, the pending buffer, the label sweep,
lifecycle (promote / rollback / rule) and drift."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import cast

import pytest

from vigie_contracts.events.fraud import Decision, LabelSource, LabelValue
from vigie_contracts.events.payments import (
    DisputeCategory,
    DisputeOpened,
    DisputeOutcome,
    DisputeResolved,
)
from vigie_contracts.topics import FRAUD_LABELS
from vigie_featureset import TxFact
from vigie_inference.adapters.models import Checkpoint, ModelRegistry
from vigie_inference.adapters.predictions import StoredPrediction
from vigie_inference.handlers.decision import decide
from vigie_inference.handlers.drift import DriftMonitor
from vigie_inference.handlers.labels import (
    bucket_of,
    fraud_label,
    genuine_due,
    label_envelope,
    plan_sweep,
)
from vigie_inference.handlers.learning import LabelIn, LearnerCore
from vigie_inference.handlers.lifecycle import (
    LifecycleError,
    Registry,
    parse_version,
    promote,
    rollback,
    rule_winner,
)
from vigie_inference.handlers.pending import PendingBuffer
from vigie_inference.serving import Kinds, ModelSource, fresh
from vigie_inference.settings import InferenceSettings, Thresholds

T0 = datetime(2018, 4, 1, tzinfo=UTC)


def tx(i: int, customer: str = "c1", at: datetime = T0) -> TxFact:
    return TxFact(f"t{i}", customer, None, "term", "m", None, 100 * i, at)


def test_decisions_follow_the_thresholds() -> None:
    t = Thresholds(review=0.5, block=0.9)
    assert decide(0.49, t)[0] is Decision.APPROVE
    assert decide(0.5, t)[0] is Decision.REVIEW
    assert decide(0.9, t)[0] is Decision.BLOCK
    assert "0.9" in decide(0.95, t)[1]
    with pytest.raises(ValueError, match="block must be >= review"):
        Thresholds(review=0.8, block=0.5)


def test_pending_buffer_is_bounded_and_skips_the_scored_transaction() -> None:
    buffer = PendingBuffer(per_customer=3, customers=2, horizon=timedelta(hours=1))
    for i in range(5):
        buffer.add(tx(i, at=T0 + timedelta(minutes=i)))
    buffer.add(tx(4, at=T0 + timedelta(minutes=4)))  # redelivered: kept once
    now = tx(9, at=T0 + timedelta(minutes=10))
    assert [f.transaction_id for f in buffer.before(now)] == ["t2", "t3", "t4"]
    assert [f.transaction_id for f in buffer.before(tx(4))] == ["t2", "t3"]
    late = tx(10, at=T0 + timedelta(minutes=63, seconds=30))
    assert [f.transaction_id for f in buffer.before(late)] == ["t4"]  # horizon: an hour
    buffer.add(tx(20, "c2"))
    buffer.add(tx(30, "c3"))  # evicts c1, the least recently seen
    assert buffer.customers == 2
    assert buffer.before(now) == []


def test_dispute_events_become_fraud_labels() -> None:
    opened = DisputeOpened(
        dispute_id="d1",
        transaction_id="t1",
        customer_id=None,
        reason_code="10.4",
        category=DisputeCategory.FRAUD,
        amount_minor=100,
        currency="EUR",
        opened_at=T0,
    )
    label = fraud_label(opened, "c9")
    assert label is not None
    assert (label.label, label.source, label.customer_id) == (
        LabelValue.FRAUD,
        LabelSource.DISPUTE,
        "c9",
    )
    assert fraud_label(opened.model_copy(update={"category": DisputeCategory.CONSUMER})) is None
    resolved = DisputeResolved(
        dispute_id="d1",
        transaction_id="t1",
        category=DisputeCategory.FRAUD,
        outcome=DisputeOutcome.LOST,
        resolved_at=T0,
    )
    chargeback = fraud_label(resolved, "c9")
    assert chargeback is not None and chargeback.source is LabelSource.CHARGEBACK
    assert fraud_label(resolved.model_copy(update={"outcome": DisputeOutcome.WON})) is None
    # the id names the fact: a re-sent label is the same event
    assert label_envelope(label, producer="p").event_id == "t1:fraud:dispute"


def test_sweep_plans_only_buckets_past_their_deadline() -> None:
    width, deadline = timedelta(minutes=10), timedelta(days=7, hours=1)
    first = T0 + timedelta(minutes=3)
    assert bucket_of(first, width) == T0
    clock = T0 + deadline + timedelta(minutes=25)
    plan = plan_sweep(clock, None, first, width=width, deadline=deadline)
    # [T0, T0+10) is due at T0+10+deadline, [T0+10, +20) at T0+20+deadline; [+20, +30) not yet
    assert plan.buckets == (T0, T0 + width)
    assert plan.swept_until == T0 + 2 * width
    again = plan_sweep(clock, plan.swept_until, first, width=width, deadline=deadline)
    assert again.buckets == () and again.swept_until == plan.swept_until
    assert plan_sweep(None, None, first, width=width, deadline=deadline).buckets == ()
    rows = [("a", "c", T0, False), ("b", "c", T0, True)]
    labels = list(genuine_due(rows, deadline=timedelta(days=7)))
    assert [(g.transaction_id, g.label, g.labelled_at) for g in labels] == [
        ("a", LabelValue.GENUINE, T0 + timedelta(days=7))
    ]


def test_promote_rollback_and_the_rule() -> None:
    kinds = ("logreg", "forest")
    reg = Registry(champion="logreg")
    promoted = promote(reg, "forest", kinds, at=T0, reason="manual")
    assert (promoted.champion, promoted.pinned, promoted.revision) == ("forest", None, 1)
    with pytest.raises(LifecycleError):
        promote(reg, "nope", kinds, at=T0, reason="x")
    back = rollback(promote(promoted, "logreg", kinds, at=T0, reason="r"), [1, 2], at=T0, reason="")
    assert back.champion == "forest"  # what the last change replaced
    assert rollback(promoted, [1, 2], at=T0, reason="").champion == "logreg"
    pinned = rollback(reg, [3, 4, 5], at=T0, reason="bad model")
    assert (pinned.champion, pinned.pinned) == ("logreg", 4)  # the checkpoint before the newest
    explicit = rollback(reg, [3, 4], at=T0, reason="", to_version="forest@3")
    assert (explicit.champion, explicit.pinned) == ("forest", 3)
    with pytest.raises(LifecycleError):
        rollback(reg, [3], at=T0, reason="")
    with pytest.raises(LifecycleError):
        parse_version("forest")
    assert Registry.from_doc(explicit.doc()) == explicit
    ap = {"logreg": 0.60, "forest": 0.70}
    assert rule_winner("logreg", ap, 20_000, margin=0.02, min_labels=10_000) == "forest"
    assert rule_winner("logreg", ap, 5_000, margin=0.02, min_labels=10_000) is None
    assert rule_winner("logreg", ap, 20_000, margin=0.2, min_labels=10_000) is None


def test_drift_fires_on_a_shift_and_respects_the_cooldown() -> None:
    now = [0.0]
    monitor = DriftMonitor(
        delta=0.002, features=("amount",), cooldown_s=60, clock=lambda: now[0]
    )
    signals = []
    for i in range(2000):
        shifted = i >= 1000
        signals += monitor.observe_score(
            0.9 if shifted else 0.1,
            {"amount": 500.0 if shifted else 50.0},
            model="m",
            version="m@1",
        )
    detectors = {s.detector for s in signals}
    assert detectors == {"adwin:score", "adwin:feature"}
    assert all(s.drift_detected for s in signals)
    # one signal per detector within the cooldown, though ADWIN fired more often
    assert len(signals) == 2 and monitor.detections >= 2
    errors = [monitor.observe_error(float(i >= 500), model="m", version="m@1") for i in range(1000)]
    assert any(errors)


def test_settings_defaults_are_sane() -> None:
    settings = InferenceSettings()
    assert settings.label_deadline == timedelta(days=7, hours=1)
    assert settings.labels_topic == FRAUD_LABELS.name and FRAUD_LABELS.partitions == 1
    with pytest.raises(ValueError, match="role"):
        InferenceSettings(role="bogus")


def _checkpoint(learned: int, frauds: int | None) -> Checkpoint:
    return Checkpoint(seq=1, created_at=T0, positions={}, learned=learned, files={},
                      learned_frauds=frauds)


def test_the_cold_start_rule_serves_until_enough_frauds_are_learned() -> None:
    source = ModelSource(cast(ModelRegistry, None), Kinds.of("", None, 0), min_labels=10,
                         min_frauds=3)
    assert not source.enough(_checkpoint(100, 2))
    assert not source.enough(_checkpoint(9, 3))
    assert source.enough(_checkpoint(10, 3))
    # a checkpoint from before frauds were counted is not held back
    assert source.enough(_checkpoint(10, None))
    assert InferenceSettings().min_frauds_to_serve > 0


def test_the_learner_counts_the_frauds_it_learns_once() -> None:
    def prediction(tx: str) -> StoredPrediction:
        return StoredPrediction(tx, "c1", T0, {"amount": 10.0}, None, None, None)

    def label(offset: int, tx: str, fraud: bool) -> LabelIn:
        return LabelIn("fraud.labels", 0, offset, tx, fraud, T0 + timedelta(days=7))

    stored = {tx: prediction(tx) for tx in ("t1", "t2", "t3")}
    core = LearnerCore({"logreg": fresh("logreg", 0)}, "logreg")
    core.learn([label(0, "t1", True), label(1, "t2", False), label(2, "t3", True)], stored)
    assert (core.learned, core.learned_frauds) == (3, 2)
    core.learn([label(2, "t3", True)], stored)  # replayed below the position: not learned again
    assert (core.learned, core.learned_frauds) == (3, 2)
    unknown = LearnerCore({"logreg": fresh("logreg", 0)}, "logreg", learned=5, learned_frauds=None)
    unknown.learn([label(0, "t1", True)], stored)
    assert (unknown.learned, unknown.learned_frauds) == (6, None)
