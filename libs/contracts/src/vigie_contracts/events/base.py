"""The event envelope every vigie topic carries, and the base of every payload model."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

#: ISO 4217 alphabetic code (the list itself is checked by the producers that normalise money).
CURRENCY_PATTERN = r"^[A-Z]{3}$"
#: ISO 3166-1 alpha-2.
COUNTRY_PATTERN = r"^[A-Z]{2}$"


class Event(BaseModel):
    """A payload: one fact that happened, immutable once published.

    Subclasses set ``EVENT_TYPE`` (the snake_case name other teams subscribe to) and
    ``SCHEMA_VERSION`` (bumped with every schema change, the old ``.avsc`` kept in the repo).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", use_enum_values=False)

    EVENT_TYPE: ClassVar[str]
    SCHEMA_VERSION: ClassVar[int] = 1


E = TypeVar("E", bound=Event)


def utc(value: datetime) -> datetime:
    """Timestamps on the wire are UTC; a naive datetime is a bug, not local time."""
    if value.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return value.astimezone(UTC)


class Envelope(BaseModel, Generic[E]):
    """What is on a topic: the payload and what every consumer needs to handle it.

    - ``event_id``: unique per fact; consumers deduplicate and upsert on it.
    - ``event_time``: when the fact happened at its source (drives windows), not when it was sent.
    - ``producer``: the service (and instance) that published it.
    - ``traceparent`` / ``tracestate``: W3C trace context, so one trace follows an event
      across services (also sent as Kafka headers).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: str = Field(default_factory=lambda: str(uuid.uuid4()), min_length=1)
    event_type: str
    event_time: datetime
    producer: str = Field(min_length=1)
    schema_version: int = Field(ge=1)
    traceparent: str | None = None
    tracestate: str | None = None
    payload: E

    _check_time = field_validator("event_time")(utc)

    @classmethod
    def wrap(
        cls,
        payload: E,
        *,
        producer: str,
        event_time: datetime,
        event_id: str | None = None,
        traceparent: str | None = None,
        tracestate: str | None = None,
    ) -> Envelope[E]:
        fields: dict[str, Any] = {
            "event_type": payload.EVENT_TYPE,
            "event_time": event_time,
            "producer": producer,
            "schema_version": payload.SCHEMA_VERSION,
            "traceparent": traceparent,
            "tracestate": tracestate,
            "payload": payload,
        }
        if event_id is not None:
            fields["event_id"] = event_id
        return cls(**fields)
