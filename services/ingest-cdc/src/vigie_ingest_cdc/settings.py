"""Settings of ingest-cdc, from ``VIGIE_INGEST_CDC_*`` variables (nested fields with ``__``).

The two PII keys have no default: a service that would tokenise card numbers with a key
everybody knows is worse than one that does not start.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import SettingsConfigDict

from vigie_runtime import ObservabilitySettings, ServiceSettings
from vigie_stores.lake import LakeConfig
from vigie_stores.mongo import MongoConfig

#: the OLTP tables this service understands (Debezium's ``source.table``)
TABLES = ("customers", "merchants", "terminals", "cards", "transactions", "refunds", "disputes")


class PiiSettings(BaseModel):
    """Keys of the keyed hashes that stand for card numbers and personal data."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: HMAC-SHA256 key of card tokens; rotating it changes every token (a migration)
    card_token_key: SecretStr = Field(min_length=16)
    #: key of the e-mail, phone, IP, name and birth-date pseudonyms (``vigie_contracts.pseudonyms``)
    #: the same key as the logs' ``pseudonym_key`` and clickstream's ``ip_hmac_key``, or
    #: pseudonyms do not join across services
    pseudonym_key: SecretStr = Field(min_length=16)
    #: columns replaced by ``<column>_pseudonym`` wherever they appear (any table); each needs a
    #: pseudonym kind (``handlers.pii.COLUMN_KINDS``), or the service refuses to start
    pseudonymised_columns: tuple[str, ...] = (
        "email",
        "phone",
        "ip_address",
        "full_name",
        "date_of_birth",
    )


class IngestCdcSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="VIGIE_INGEST_CDC_")

    observability: ObservabilitySettings = ObservabilitySettings(service_name="ingest-cdc")
    #: Debezium's ``<topic.prefix>.<schema>.``; the tables are appended
    cdc_topic_prefix: str = Field(default="cdc.public.", min_length=1)
    tables: tuple[str, ...] = TABLES
    #: where a new consumer group starts: ``earliest`` bootstraps from Debezium's snapshot
    start_offset: Literal["earliest", "latest"] = "earliest"
    pii: PiiSettings
    mongo: MongoConfig = MongoConfig(database="vigie", app_name="ingest-cdc")
    #: relative paths resolve against the working directory (the repo root in development)
    #: ``bulk`` on MongoDB; ``per_document`` on FerretDB 1.x (see ``adapters.mirrors``)
    mirror_write_mode: Literal["bulk", "per_document"] = "bulk"
    mirror_write_concurrency: int = Field(default=8, ge=1, le=256)
    lake: LakeConfig = LakeConfig(url=".vigie/data/lake")
    lake_enabled: bool = True
    #: longest wait between attempts while a store or Kafka is unavailable (never dead-letter)
    unavailable_backoff_max_s: float = Field(default=30.0, gt=0)

    @property
    def topics(self) -> list[str]:
        return [f"{self.cdc_topic_prefix}{table}" for table in self.tables]
