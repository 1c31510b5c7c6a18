"""Alerts raised by services/alerting: one per incident, with a count, until resolved."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import ClassVar

from pydantic import Field

from .base import Event


class AlertCategory(StrEnum):
    FRAUD = "fraud"
    SECURITY = "security"
    PIPELINE = "pipeline"
    MODEL = "model"


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class AlertStatus(StrEnum):
    FIRING = "firing"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class Alert(Event):
    """Keyed by ``fingerprint``: the rule and the incident's identity (merchant, account, group)."""

    EVENT_TYPE: ClassVar[str] = "alert"

    alert_id: str
    rule: str
    category: AlertCategory
    severity: Severity
    status: AlertStatus
    fingerprint: str
    summary: str
    count: int = Field(ge=1)
    first_seen: datetime
    last_seen: datetime
    labels: dict[str, str] = Field(default_factory=dict)
