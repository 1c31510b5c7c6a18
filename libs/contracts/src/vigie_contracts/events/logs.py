"""Security, authentication and audit events found in the application logs by services/logs."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import ClassVar

from pydantic import Field

from .base import Event


class SecurityCategory(StrEnum):
    AUTH_FAILURE = "auth_failure"
    AUTH_SUCCESS = "auth_success"
    PRIVILEGE_CHANGE = "privilege_change"
    ACCESS_DENIED = "access_denied"
    AUDIT = "audit"


class SecurityEvent(Event):
    """Keyed by ``account`` when known, else by the source IP's pseudonym. Already redacted."""

    EVENT_TYPE: ClassVar[str] = "security_event"

    category: SecurityCategory
    service: str
    host: str | None = None
    account: str | None = None
    source_ip_pseudonym: str | None = None
    message: str = Field(max_length=8192)
    occurred_at: datetime
    trace_id: str | None = None
    attributes: dict[str, str] = Field(default_factory=dict)
