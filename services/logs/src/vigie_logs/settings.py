"""Settings of services/logs (environment prefix ``VIGIE_LOGS_``, nested fields with ``__``)."""

from __future__ import annotations

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from vigie_contracts.topics import LOGS_RAW, SECURITY_EVENTS
from vigie_runtime import ObservabilitySettings, ServiceSettings
from vigie_stores.cassandra import CassandraConfig
from vigie_stores.lake import LakeConfig


class LogsSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="VIGIE_LOGS_")

    observability: ObservabilitySettings = ObservabilitySettings(service_name="logs")
    input_topic: str = LOGS_RAW.name
    security_topic: str = SECURITY_EVENTS.name
    cassandra: CassandraConfig = CassandraConfig()
    keyspace: str = Field(default="vigie", pattern=r"^[A-Za-z][A-Za-z0-9_]{0,47}$")
    #: replication of the keyspace when the service creates it (production: NetworkTopologyStrategy)
    replication_factor: int = Field(default=1, ge=1, le=9)
    lake: LakeConfig = LakeConfig()
    lake_enabled: bool = True
    #: how often open lake files are checked for max_file_age
    lake_roll_interval_s: float = Field(default=10.0, gt=0)
    #: key of the HMAC that pseudonymises e-mails, phones and IPs (same key: same pseudonyms)
    pseudonym_key: SecretStr = SecretStr("")
    #: longer records are cut here and flagged ``truncated`` (the topic may carry 10 MB)
    max_record_bytes: int = Field(default=64 * 1024, ge=1024, le=16 * 2**20)
    #: the query API's largest page
    api_max_limit: int = Field(default=1000, ge=1, le=10_000)
    #: how many hour buckets a query by service walks at most (a week by default)
    api_max_hours: int = Field(default=168, ge=1, le=24 * 366)

    @model_validator(mode="after")
    def _key_set(self) -> LogsSettings:
        if len(self.pseudonym_key.get_secret_value()) < 16:
            raise ValueError(
                "pseudonym_key must be set (at least 16 characters): without it pseudonyms "
                "could be recomputed by anyone"
            )
        return self
