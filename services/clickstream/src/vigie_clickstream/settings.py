"""Settings of the clickstream service, from ``VIGIE_CLICKSTREAM_*`` variables.

Nested fields use ``__``: ``VIGIE_CLICKSTREAM_COLLECTOR__API_KEYS='{"shop-web": "s3cret"}'``.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from vigie_contracts.topics import CLICKSTREAM_EVENTS, CLICKSTREAM_RAW, CLICKSTREAM_SESSIONS
from vigie_runtime import ObservabilitySettings, ServiceSettings
from vigie_stores.cassandra import CassandraConfig
from vigie_stores.lake import LakeConfig
from vigie_stores.redis import RedisConfig


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ValidationLimits(_Frozen):
    """What the collector and the pipeline both refuse, beyond the contract itself."""

    #: an SDK clock may run ahead a little; further ahead is a bug that would skew windows
    max_future: timedelta = Field(default=timedelta(minutes=5), ge=timedelta(0))
    #: keys + values, UTF-8 bytes: properties are free-form and land in every row
    max_properties_bytes: int = Field(default=4096, ge=0)
    max_properties: int = Field(default=64, ge=0)
    max_event_id_length: int = Field(default=128, ge=1)


class CollectorSettings(_Frozen):
    """The HTTP collector for SDKs that do not speak Kafka."""

    enabled: bool = True
    #: app id → API key (header ``X-Api-Key``); the key decides the app, the body cannot
    api_keys: dict[str, SecretStr] = Field(default_factory=dict)
    #: key of client IPs' pseudonyms (``vigie_contracts.pseudonyms``, at least 16 bytes): the
    #: clear IP is never produced or stored. Configure the same key as the logs' and ingest-cdc's
    #: ``pseudonym_key`` so the same IP gets the same pseudonym everywhere.
    ip_hmac_key: SecretStr = Field(default=SecretStr("change-me-ip-pseudonym-key"), min_length=16)
    #: the compressed body, and (for gzip) what it inflates to
    max_body_bytes: int = Field(default=1_048_576, ge=1)
    max_inflated_bytes: int = Field(default=8_388_608, ge=1)
    max_events_per_batch: int = Field(default=1000, ge=1)
    #: token bucket per app, in events: sustained rate and burst
    rate_events_per_s: float = Field(default=20_000.0, gt=0)
    rate_burst_events: int = Field(default=40_000, ge=1)
    #: behind a load balancer the peer is the balancer: take the first X-Forwarded-For hop
    trust_forwarded_for: bool = False
    #: how long to wait for Kafka's acks before answering 503
    produce_timeout_s: float = Field(default=10.0, gt=0)

    @model_validator(mode="after")
    def _sane(self) -> CollectorSettings:
        if self.rate_burst_events < self.max_events_per_batch:
            raise ValueError("rate_burst_events must be >= max_events_per_batch")
        return self


class SessionSettings(_Frozen):
    """Sessionisation per user by event time; open sessions live in Redis."""

    inactivity_gap: timedelta = Field(default=timedelta(minutes=30), gt=timedelta(0))
    #: how far behind the newest event time of a partition an event may still arrive in order
    allowed_lateness: timedelta = Field(default=timedelta(minutes=2), ge=timedelta(0))
    #: Redis key prefix of the open-session state (one hash + one sorted set per partition)
    redis_prefix: str = Field(default="clickstream:sessions", min_length=1)
    #: event ids remembered per open session, so a re-delivered event is not counted twice
    recent_ids: int = Field(default=32, ge=0)


class PipelineSettings(_Frozen):
    enabled: bool = True
    keyspace: str = Field(default="vigie", pattern=r"^[A-Za-z][A-Za-z0-9_]{0,47}$")
    #: concurrent prepared INSERTs per batch
    write_concurrency: int = Field(default=128, ge=1)
    #: event ids already stored, kept in memory to skip re-deliveries cheaply
    recent_ids: int = Field(default=200_000, ge=0)
    #: user agents parsed, kept in memory (a few thousand distinct ones cover most traffic)
    user_agent_cache: int = Field(default=10_000, ge=0)
    #: a MaxMind-format country database; none: ``country_code`` stays empty
    maxmind_db: Path | None = None
    lake_enabled: bool = True
    publish_events: bool = True


class ApiSettings(_Frozen):
    enabled: bool = True
    max_range: timedelta = Field(default=timedelta(days=31), gt=timedelta(0))
    max_rows: int = Field(default=5000, ge=1)


class TopicNames(_Frozen):
    """The catalogue's topics by default; other names for tests or a staging prefix."""

    raw: str = CLICKSTREAM_RAW.name
    events: str = CLICKSTREAM_EVENTS.name
    sessions: str = CLICKSTREAM_SESSIONS.name


class ClickstreamSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="VIGIE_CLICKSTREAM_")

    observability: ObservabilitySettings = ObservabilitySettings(service_name="clickstream")
    collector: CollectorSettings = CollectorSettings()
    pipeline: PipelineSettings = PipelineSettings()
    sessions: SessionSettings = SessionSettings()
    api: ApiSettings = ApiSettings()
    topics: TopicNames = TopicNames()
    limits: ValidationLimits = ValidationLimits()
    cassandra: CassandraConfig = CassandraConfig()
    redis: RedisConfig = RedisConfig()
    lake: LakeConfig = LakeConfig(url=".vigie/data/lake", max_file_age=timedelta(minutes=1))
