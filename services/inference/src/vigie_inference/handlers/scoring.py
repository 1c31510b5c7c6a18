"""Scoring one transaction, pure: the completed vector → champion and shadow scores → decision,
and what each sink receives (the score and decision events, the fraud_events document, the
prediction log row). The same function serves the stream and ``POST /score``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from vigie_contracts import Envelope
from vigie_contracts.events.fraud import (
    Decision,
    FeatureContribution,
    FraudDecision,
    FraudScore,
    ModelScore,
)
from vigie_featureset import TxFact

from ..settings import Thresholds
from .decision import decide


class Scoring(Protocol):
    """What scoring needs of a model (a ``FraudModel``, or the cold-start rule)."""

    def predict_proba(self, x: Mapping[str, float]) -> float: ...

    def explain(
        self, x: Mapping[str, float], top: int = 5
    ) -> Sequence[tuple[str, float, float]]: ...


@dataclass(frozen=True, slots=True)
class Served:
    """A model as the scorer serves it: its kind, the version of its state, the model."""

    kind: str
    version: str
    model: Scoring
    cold_start: bool = False


@dataclass(frozen=True, slots=True)
class ServingSet:
    """What scores now: the champion, and the challengers scored in shadow."""

    champion: Served
    challengers: tuple[Served, ...] = ()
    #: the registry's revision this set was built from (changes on learn, promote, rollback)
    revision: str = "cold"

    @property
    def cold_start(self) -> bool:
        return self.champion.cold_start


@dataclass(frozen=True, slots=True)
class Scored:
    tx: TxFact
    vector: dict[str, float]
    score: float
    decision: Decision
    reason: str
    champion: Served
    top: list[tuple[str, float, float]]
    shadow: list[tuple[Served, float]] = field(default_factory=list)


def score(
    tx: TxFact,
    vector: dict[str, float],
    serving: ServingSet,
    thresholds: Thresholds,
    *,
    top: int,
) -> Scored:
    champion = serving.champion
    value = _clip(champion.model.predict_proba(vector))
    decision, reason = decide(value, thresholds)
    explained = champion.model.explain(vector, top) if top > 0 else []
    shadow = [(c, _clip(c.model.predict_proba(vector))) for c in serving.challengers]
    return Scored(tx, vector, value, decision, reason, champion, list(explained), shadow)


def _clip(value: float) -> float:
    # River's probabilities can leave [0, 1] by a rounding error; the contract says [0, 1]
    return 0.0 if value < 0.0 else 1.0 if value > 1.0 else float(value)


def score_event(scored: Scored, *, scored_at: datetime) -> FraudScore:
    tx = scored.tx
    return FraudScore(
        transaction_id=tx.transaction_id,
        customer_id=tx.customer_id,
        score=scored.score,
        decision=scored.decision,
        model_name=scored.champion.kind,
        model_version=scored.champion.version,
        # the items are built from checked values (floats, names, versions): not validated
        # again one by one, which is most of an event's construction cost
        top_features=[
            FeatureContribution.model_construct(name=n, value=float(v), contribution=float(c))
            for n, v, c in scored.top
        ],
        challengers=[
            ModelScore.model_construct(model_name=s.kind, model_version=s.version, score=v)
            for s, v in scored.shadow
        ],
        scored_at=scored_at,
        cold_start=scored.champion.cold_start,
        terminal_id=tx.terminal_id,
        merchant_id=tx.merchant_id,
    )


def decision_event(scored: Scored, *, decided_at: datetime) -> FraudDecision:
    return FraudDecision(
        transaction_id=scored.tx.transaction_id,
        customer_id=scored.tx.customer_id,
        decision=scored.decision,
        score=scored.score,
        reason=scored.reason,
        decided_at=decided_at,
    )


def envelopes(
    scored: Scored, *, producer: str, now: datetime, traceparent: str | None = None
) -> tuple[Envelope[FraudScore], Envelope[FraudDecision]]:
    """Ids derived from the transaction: a rescored redelivery carries the same ones."""
    tx_id = scored.tx.transaction_id
    return (
        Envelope.wrap(
            score_event(scored, scored_at=now),
            producer=producer,
            event_time=now,
            event_id=f"{tx_id}:score",
            traceparent=traceparent,
        ),
        Envelope.wrap(
            decision_event(scored, decided_at=now),
            producer=producer,
            event_time=now,
            event_id=f"{tx_id}:decision",
            traceparent=traceparent,
        ),
    )


def fraud_event_doc(scored: Scored, *, now: datetime) -> dict[str, Any]:
    """The ``fraud_events`` document (its ``_id`` is the transaction id)."""
    tx = scored.tx
    return {
        "transaction_id": tx.transaction_id,
        "customer_id": tx.customer_id,
        "terminal_id": tx.terminal_id,
        "merchant_id": tx.merchant_id,
        "amount_minor": tx.amount_minor,
        "occurred_at": tx.occurred_at,
        "score": scored.score,
        "decision": scored.decision.value,
        "reason": scored.reason,
        "model_name": scored.champion.kind,
        "model_version": scored.champion.version,
        "cold_start": scored.champion.cold_start,
        "features": scored.vector,
        "top_features": [
            {"name": n, "value": v, "contribution": c} for n, v, c in scored.top
        ],
        "challengers": [
            {"model_name": s.kind, "model_version": s.version, "score": v}
            for s, v in scored.shadow
        ],
        "scored_at": now,
    }


def shadow_scores(scored: Scored) -> dict[str, float]:
    return {scored.champion.kind: scored.score, **{s.kind: v for s, v in scored.shadow}}


def summary(scored: Scored) -> dict[str, Any]:
    """The REST answer (and what tests compare with the stream)."""
    return {
        "transaction_id": scored.tx.transaction_id,
        "score": scored.score,
        "decision": scored.decision.value,
        "reason": scored.reason,
        "model_name": scored.champion.kind,
        "model_version": scored.champion.version,
        "cold_start": scored.champion.cold_start,
        "top_features": [
            {"name": n, "value": v, "contribution": c} for n, v, c in scored.top
        ],
        "challengers": [
            {"model_name": s.kind, "model_version": s.version, "score": v}
            for s, v in scored.shadow
        ],
        "features": scored.vector,
    }


def by_customer_order(txs: Sequence[TxFact]) -> list[TxFact]:
    """Redeliveries dropped, first occurrence kept (input order is partition order)."""
    seen: set[str] = set()
    out: list[TxFact] = []
    for tx in txs:
        if tx.transaction_id not in seen:
            seen.add(tx.transaction_id)
            out.append(tx)
    return out


def vector_of(found: Mapping[str, float]) -> dict[str, float]:
    return {name: float(value) for name, value in found.items()}
