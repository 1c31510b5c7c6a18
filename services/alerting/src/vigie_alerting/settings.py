"""Settings of services/alerting (environment prefix ``VIGIE_ALERTING_``, nested with ``__``).

What the service reads and where it writes are settings; what raises an alert and where it is
sent are rules (the YAML file at ``rules_path``), reloadable without a restart.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from vigie_contracts.topics import (
    ALERTS,
    DEAD_LETTERS,
    FRAUD_LABELS,
    FRAUD_SCORES,
    HEARTBEATS,
    MODEL_DRIFT,
    SECURITY_EVENTS,
    TRANSACTIONS,
)
from vigie_runtime import ObservabilitySettings, ServiceSettings
from vigie_stores.mongo import MongoConfig


class AlertingSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="VIGIE_ALERTING_")

    observability: ObservabilitySettings = ObservabilitySettings(service_name="alerting")
    #: the rules file (in Kubernetes, a ConfigMap mounted read-only)
    rules_path: Path = Path("/etc/vigie/alerting/rules.yaml")
    #: how often the file is checked for a change (0: only POST /v1/rules/reload reloads)
    rules_watch_interval_s: float = Field(default=5.0, ge=0)

    scores_topic: str = FRAUD_SCORES.name
    security_topic: str = SECURITY_EVENTS.name
    drift_topic: str = MODEL_DRIFT.name
    heartbeats_topic: str = HEARTBEATS.name
    dead_letter_topics: tuple[str, ...] = tuple(t.name for t in DEAD_LETTERS)
    #: pipeline output topics read for end-to-end latency (latency rules may name these only)
    latency_topics: tuple[str, ...] = (TRANSACTIONS.name, FRAUD_SCORES.name)
    alerts_topic: str = ALERTS.name
    labels_topic: str = FRAUD_LABELS.name
    #: where a new consumer group starts: alerts are about now, not last month's backlog
    start_offset: Literal["earliest", "latest"] = "latest"

    mongo: MongoConfig = MongoConfig(database="alerting", app_name="alerting")
    #: how often time-driven conditions are judged (quiet rules, latency, heartbeats, updates)
    tick_interval_s: float = Field(default=0.5, gt=0, le=60)
    #: how often every consumer group's offsets are read (a lag rule needs min_samples of them)
    lag_interval_s: float = Field(default=10.0, gt=0, le=600)
    #: delivered outbox entries are marked in MongoDB in batches this often
    outbox_flush_interval_s: float = Field(default=0.5, gt=0, le=60)
    #: the REST API's largest page
    api_max_limit: int = Field(default=500, ge=1, le=10_000)
