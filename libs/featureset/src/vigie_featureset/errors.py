"""The one exception tree of vigie_featureset."""

from __future__ import annotations

from datetime import datetime


class FeaturesetError(Exception):
    """Root of every error raised by vigie_featureset."""


class LateEventError(FeaturesetError):
    """An event older than the state's watermark minus horizon and lateness: it is not applied.

    Callers count it (late events are reported, not silently dropped) and move on.
    """

    def __init__(self, kind: str, event_id: str, event_time: datetime, limit: datetime) -> None:
        super().__init__(
            f"{kind} {event_id!r} at {event_time.isoformat()} is at or before {limit.isoformat()}"
        )
        self.kind = kind
        self.event_id = event_id
        self.event_time = event_time
        self.limit = limit


class StateDecodeError(FeaturesetError):
    """Bytes that are not a serialized EntityState (corrupt, truncated or of an unknown version)."""


class UnknownFeature(FeaturesetError, KeyError):
    """No feature of that name in the registry."""
