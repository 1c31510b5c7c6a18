"""Learning from labels, pure: test-then-train on the snapshot taken at scoring time.

Everything the models learn comes from ``fraud.labels`` in offset order, so the model state is a
function of that stream:

- a label at an offset below the checkpoint's position of its partition is already in the
  state (the consumer re-reads from the group's commit, which never passes the checkpoint):
  skipped — this is the "seek to the checkpoint" without touching the consumer;
- each (transaction, label value) is learned once: the prediction log remembers the offset at
  which it was learned, and a label whose value was learned at an *earlier* offset is a
  duplicate (a re-sent label, a second fraud source). After a crash the state goes back to the
  checkpoint and the offsets recorded past it are not earlier than the labels that wrote them,
  so those labels are learned again, once — exactly as an uninterrupted run;
- a genuine label then a fraud one (a dispute later than the label delay) are both learned: the
  second corrects the first as far as an online model can;
- a label without a prediction (never scored, or past the log's TTL) cannot be learned: counted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from ..adapters.predictions import PrequentialRow, StoredPrediction, day_of
from ..model import FraudModel


class LabelTopicError(ValueError):
    """The labels topic is not one partition: the learner would depend on how partitions
    interleave, and a restart from a checkpoint could relearn or skip labels."""


def check_label_partitions(topic: str, partitions: Sequence[int]) -> None:
    """The learner learns one total order of labels: ``topic`` must have exactly one partition."""
    if not partitions:
        raise LabelTopicError(
            f"labels topic {topic!r} does not exist: create it with one partition "
            "(the topic catalogue's fraud.labels) before starting the learner"
        )
    if len(partitions) != 1:
        raise LabelTopicError(
            f"labels topic {topic!r} has {len(partitions)} partitions; the learner needs exactly "
            "one (one order of labels, so a restart from a checkpoint neither relearns nor "
            "skips one): recreate it with one partition, as the topic catalogue says"
        )


@dataclass(frozen=True, slots=True)
class LabelIn:
    topic: str
    partition: int
    offset: int
    transaction_id: str
    fraud: bool
    labelled_at: datetime

    @property
    def stream(self) -> str:
        return f"{self.topic}:{self.partition}"


@dataclass
class LearnOutcome:
    learned: list[tuple[str, bool, int]] = field(default_factory=list)
    prequential: list[PrequentialRow] = field(default_factory=list)
    corrections: list[tuple[str, str]] = field(default_factory=list)  # (day, transaction)
    #: (champion score, fraud) of each learned label, for the error-rate drift detector
    champion_scores: list[tuple[float, bool]] = field(default_factory=list)
    replayed: int = 0
    duplicates: int = 0
    missing: int = 0


class LearnerCore:
    def __init__(
        self,
        models: Mapping[str, FraudModel],
        champion: str,
        *,
        positions: Mapping[str, int] | None = None,
        learned: int = 0,
        learned_frauds: int | None = 0,
    ) -> None:
        self.models = dict(models)
        self.champion = champion
        self.positions: dict[str, int] = dict(positions or {})
        self.learned = learned
        #: fraud labels among ``learned``; None when restored from a checkpoint that predates
        #: the count (it cannot be rebuilt, so it stays unknown)
        self.learned_frauds = learned_frauds

    def learn(
        self, labels: Sequence[LabelIn], stored: Mapping[str, StoredPrediction]
    ) -> LearnOutcome:
        out = LearnOutcome()
        # offsets learned in this call, on top of what the prediction log says
        local: dict[tuple[str, bool], int] = {}
        for label in labels:
            stream = label.stream
            if label.offset < self.positions.get(stream, 0):
                out.replayed += 1
                continue
            self.positions[stream] = label.offset + 1
            prediction = stored.get(label.transaction_id)
            if prediction is None:
                out.missing += 1
                continue
            learned_at = {
                True: local.get((label.transaction_id, True), prediction.learned_fraud),
                False: local.get((label.transaction_id, False), prediction.learned_genuine),
            }
            earlier = learned_at[label.fraud]
            if earlier is not None and earlier < label.offset:
                out.duplicates += 1
                continue
            x = prediction.features
            scores = {kind: float(m.predict_proba(x)) for kind, m in self.models.items()}
            for model in self.models.values():
                model.learn(x, label.fraud)
            self.learned += 1
            if label.fraud and self.learned_frauds is not None:
                self.learned_frauds += 1
            local[(label.transaction_id, label.fraud)] = label.offset
            out.learned.append((label.transaction_id, label.fraud, label.offset))
            if self.champion in scores:
                out.champion_scores.append((scores[self.champion], label.fraud))
            other = learned_at[not label.fraud]
            day = day_of(prediction.occurred_at)
            if other is None or other >= label.offset:
                out.prequential.append(
                    PrequentialRow(
                        day=day,
                        transaction_id=label.transaction_id,
                        customer_id=prediction.customer_id,
                        occurred_at=prediction.occurred_at,
                        fraud=label.fraud,
                        labelled_at=label.labelled_at,
                        scores=scores,
                    )
                )
            elif label.fraud:
                out.corrections.append((day, label.transaction_id))
        return out

    def states(self) -> dict[str, bytes]:
        return {kind: model.to_bytes() for kind, model in self.models.items()}
