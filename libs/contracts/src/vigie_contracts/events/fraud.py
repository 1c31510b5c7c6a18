"""Fraud scoring: scores, decisions for the OLTP side, labels the models learn from, drift."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from .base import Event


class Decision(StrEnum):
    APPROVE = "approve"
    REVIEW = "review"
    BLOCK = "block"


class LabelValue(StrEnum):
    FRAUD = "fraud"
    GENUINE = "genuine"


class LabelSource(StrEnum):
    DISPUTE = "dispute"
    CHARGEBACK = "chargeback"
    ANALYST = "analyst"
    LABEL_DELAY_EXPIRED = "label_delay_expired"


class FeatureContribution(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    value: float
    contribution: float


class ModelScore(BaseModel):
    """A challenger's score of the same transaction, scored in shadow."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model_name: str
    model_version: str
    score: float = Field(ge=0, le=1)


class FraudScore(Event):
    """The champion's score of one transaction. Keyed by ``customer_id``.

    v2: ``terminal_id`` and ``merchant_id`` of the scored transaction, so bursts of high scores on
    one terminal or merchant can be seen without a join (optional: v1 events have none).
    """

    EVENT_TYPE: ClassVar[str] = "fraud_score"
    SCHEMA_VERSION: ClassVar[int] = 2

    transaction_id: str
    customer_id: str
    score: float = Field(ge=0, le=1)
    decision: Decision
    model_name: str
    model_version: str
    top_features: list[FeatureContribution] = Field(default_factory=list)
    challengers: list[ModelScore] = Field(default_factory=list)
    scored_at: datetime
    cold_start: bool = False
    terminal_id: str | None = None
    merchant_id: str | None = None


class FraudDecision(Event):
    """What the OLTP side applies to the transaction ("update real-time status")."""

    EVENT_TYPE: ClassVar[str] = "fraud_decision"

    transaction_id: str
    customer_id: str
    decision: Decision
    score: float = Field(ge=0, le=1)
    reason: str
    decided_at: datetime


class FraudLabel(Event):
    """The truth about a transaction, known days later. Keyed by ``transaction_id``."""

    EVENT_TYPE: ClassVar[str] = "fraud_label"

    transaction_id: str
    customer_id: str | None = None
    label: LabelValue
    source: LabelSource
    labelled_at: datetime
    analyst: str | None = None


class DriftSignal(Event):
    EVENT_TYPE: ClassVar[str] = "drift_signal"

    model_name: str
    model_version: str
    detector: str
    feature: str | None = None
    statistic: float
    threshold: float
    drift_detected: bool
    detected_at: datetime
