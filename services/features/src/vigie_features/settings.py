"""Settings of services/features (env prefix ``VIGIE_FEATURES_``, nested fields with ``__``).

The worker (faust-streaming) and the REST API (a separate process) read the same settings; the
API uses only ``redis``, ``observability`` and the ``api_*`` fields.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from vigie_contracts.topics import CLICKSTREAM_SESSIONS, FRAUD_LABELS, REFUNDS, TRANSACTIONS
from vigie_featureset import DEFAULT_LATENESS
from vigie_runtime import ObservabilitySettings, ServiceSettings
from vigie_stores.redis import RedisConfig

_TOPIC = r"^[A-Za-z0-9._-]{1,200}$"


class FeaturesSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="VIGIE_FEATURES_")

    observability: ObservabilitySettings = ObservabilitySettings(service_name="features")
    redis: RedisConfig = RedisConfig()

    #: the faust application id: consumer group, prefix of the changelog topics, state folder
    app_id: str = Field(default="features", pattern=r"^[a-z][a-z0-9-]{0,100}$")
    transactions_topic: str = Field(default=TRANSACTIONS.name, pattern=_TOPIC)
    refunds_topic: str = Field(default=REFUNDS.name, pattern=_TOPIC)
    labels_topic: str = Field(default=FRAUD_LABELS.name, pattern=_TOPIC)
    sessions_topic: str = Field(default=CLICKSTREAM_SESSIONS.name, pattern=_TOPIC)
    #: internal topics (the worker creates them): refunds, labels and sessions re-keyed by
    #: customer; transactions and labels re-keyed by merchant (its terminals' states live there)
    customer_events_topic: str = Field(default="features-customer-events", pattern=_TOPIC)
    merchant_events_topic: str = Field(default="features-merchant-events", pattern=_TOPIC)
    #: partitions of the internal topics and tables: the transactions topic's, so a customer's
    #: re-keyed events land on the partition (and the worker) that holds its state
    partitions: int = Field(default=TRANSACTIONS.partitions, ge=1, le=1024)
    replication_factor: int = Field(default=1, ge=1, le=9)
    #: ``rocksdb``: tables on local disk (rocksdict), recovered from the changelog topics;
    #: ``memory``: the whole state re-read from the changelog at every start
    store: Literal["rocksdb", "memory"] = "rocksdb"
    data_dir: Path = Path("/var/lib/vigie/features")
    #: events older than an entity's horizon + this are counted as too late, not applied
    allowed_lateness: timedelta = DEFAULT_LATENESS
    #: Redis writes are coalesced per entity and pipelined: one round trip at most this often
    flush_interval_ms: int = Field(default=20, ge=1, le=5_000)
    #: pending entity writes before the agents wait for Redis (backpressure)
    max_pending_writes: int = Field(default=20_000, ge=100)
    #: changelog records faust may queue before it pauses consuming to flush (its default: 100)
    changelog_buffer: int = Field(default=20_000, ge=100, le=1_000_000)
    #: Kafka static membership (KIP-345), e.g. the pod's name: a worker restarted under the same
    #: id gets its partitions back without a rebalance. Without it, a worker restarted after a
    #: crash (a new member while the dead one still holds the group) has been seen to stop
    #: committing one partition (likely cause, from reading faust 0.15: records fetched in the
    #: generation before a rebalance are skipped and acked, and a gap ahead of the acked offsets
    #: blocks every later commit of the partition). A member that stops for good keeps its
    #: partitions until the session timeout.
    group_instance_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._-]{1,200}$")
    #: how often faust commits the offsets of what was acked
    commit_interval_s: float = Field(default=1.0, gt=0, le=60)

    #: the REST API: most entities one batch lookup may ask for
    api_max_entities: int = Field(default=500, ge=1, le=10_000)

    @model_validator(mode="after")
    def _distinct_topics(self) -> FeaturesSettings:
        names = [
            self.transactions_topic,
            self.refunds_topic,
            self.labels_topic,
            self.sessions_topic,
            self.customer_events_topic,
            self.merchant_events_topic,
        ]
        if len(set(names)) != len(names):
            raise ValueError("the source and internal topics must all be different")
        if self.allowed_lateness < timedelta(0):
            raise ValueError("allowed_lateness must be >= 0")
        return self
