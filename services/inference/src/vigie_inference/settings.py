"""Settings of services/inference (environment prefix ``VIGIE_INFERENCE_``, nested with ``__``)."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_settings import SettingsConfigDict

from vigie_contracts.topics import (
    DISPUTES,
    FRAUD_DECISIONS,
    FRAUD_LABELS,
    FRAUD_SCORES,
    MODEL_DRIFT,
    TRANSACTIONS,
)
from vigie_runtime import ObservabilitySettings, ServiceSettings
from vigie_stores.cassandra import CassandraConfig
from vigie_stores.mongo import MongoConfig
from vigie_stores.redis import RedisConfig

_IDENT = r"^[A-Za-z][A-Za-z0-9_]{0,47}$"


class Thresholds(BaseModel):
    """Score → decision: ``block`` from ``block``, ``review`` from ``review``, else approve."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    review: float = Field(default=0.5, ge=0, le=1)
    block: float = Field(default=0.9, ge=0, le=1)

    @model_validator(mode="after")
    def _ordered(self) -> Thresholds:
        if self.block < self.review:
            raise ValueError("thresholds: block must be >= review")
        return self


class PromotionRule(BaseModel):
    """Automatic promotion: a challenger whose prequential average precision over the last
    ``days`` beats the champion's by ``margin`` (with at least ``min_labels`` labels) wins."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = False
    days: int = Field(default=7, ge=1, le=90)
    margin: float = Field(default=0.02, ge=0, le=1)
    min_labels: int = Field(default=10_000, ge=1)


class InferenceSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="VIGIE_INFERENCE_")

    observability: ObservabilitySettings = ObservabilitySettings(service_name="inference")
    #: which parts this process runs (``vigie-inference <role>`` overrides it)
    role: str = Field(default="all", pattern=r"^(all|scorer|learner|labeller)$")

    transactions_topic: str = TRANSACTIONS.name
    disputes_topic: str = DISPUTES.name
    scores_topic: str = FRAUD_SCORES.name
    decisions_topic: str = FRAUD_DECISIONS.name
    #: one partition (the catalogue's): one order of labels; the learner refuses any other
    labels_topic: str = FRAUD_LABELS.name
    drift_topic: str = MODEL_DRIFT.name

    redis: RedisConfig = RedisConfig()
    cassandra: CassandraConfig = CassandraConfig()
    keyspace: str = Field(default="vigie", pattern=_IDENT)
    replication_factor: int = Field(default=1, ge=1, le=9)
    mongo: MongoConfig = MongoConfig(database="vigie")
    #: MongoDB collection of scored transactions
    events_collection: str = Field(default="fraud_events", min_length=1)
    #: GridFS bucket of model states, and the collection of checkpoints / the registry
    models_bucket: str = Field(default="models", min_length=1)

    thresholds: Thresholds = Thresholds()
    #: the model kinds (vigie_inference.model.build_model); empty: the model package's defaults
    champion: str = ""
    challengers: tuple[str, ...] | None = None
    model_seed: int = 0
    #: top contributing features stored with each score
    top_features: int = Field(default=5, ge=0, le=50)
    #: how often the scorer looks for a newer model version
    model_poll_s: float = Field(default=5.0, gt=0)
    #: the scorer uses the cold-start rule until a checkpoint holds this many learned labels
    min_labels_to_serve: int = Field(default=1, ge=0)
    #: ... and this many learned fraud labels: a model that has learned (almost) no fraud ranks
    #: worse than chance (measured on the handbook's data: AUC 0.43-0.48 after 100 genuine
    #: labels, 0.62-0.82 after ~80 frauds), where the rule ranks by amount. Checkpoints written
    #: before frauds were counted are not held back.
    min_frauds_to_serve: int = Field(default=50, ge=0)

    #: transactions of one customer the scorer remembers (the features worker may lag)
    pending_per_customer: int = Field(default=32, ge=1, le=10_000)
    pending_customers: int = Field(default=200_000, ge=1)
    #: ... and for how long (event time) after the customer's last transaction
    pending_horizon: timedelta = timedelta(days=1)

    #: prediction log rows live this long (well past the label delay)
    prediction_ttl: timedelta = timedelta(days=60)
    #: event-time bucket of the sweep table
    bucket: timedelta = timedelta(minutes=10)
    label_delay: timedelta = timedelta(days=7)
    #: a fraud label arriving up to this long after the deadline still beats the sweep
    label_grace: timedelta = timedelta(hours=1)
    sweep_interval_s: float = Field(default=2.0, gt=0)

    #: the learner checkpoints after this many labels or seconds, whichever first
    checkpoint_every_labels: int = Field(default=5_000, ge=1)
    checkpoint_every_s: float = Field(default=30.0, gt=0)
    #: checkpoints kept in GridFS (the newest ones, plus every one a champion pin refers to)
    checkpoints_kept: int = Field(default=20, ge=2)
    #: days of prequential metrics kept in the learner's state
    metrics_days: int = Field(default=35, ge=1, le=400)
    promotion: PromotionRule = PromotionRule()

    #: ADWIN sensitivity and the features watched for drift
    drift_delta: float = Field(default=0.002, gt=0, lt=1)
    drift_features: tuple[str, ...] = (
        "amount",
        "customer_nb_tx_1d",
        "terminal_risk_7d",
    )
    #: at most one signal per detector in this time
    drift_cooldown_s: float = Field(default=300.0, ge=0)

    @property
    def label_deadline(self) -> timedelta:
        return self.label_delay + self.label_grace
