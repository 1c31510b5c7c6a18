"""Pipeline health: every service's heartbeat, which alerting watches."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from pydantic import Field

from .base import Event


class ServiceHeartbeat(Event):
    """Sent every few seconds by each running service instance. Keyed by ``service``."""

    EVENT_TYPE: ClassVar[str] = "service_heartbeat"

    service: str
    instance: str
    version: str
    ready: bool
    sent_at: datetime
    details: dict[str, str] = Field(default_factory=dict)
