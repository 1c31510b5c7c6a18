"""The one structured shape every log line is normalised to, whatever format it arrived in."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

#: flags a record can carry: what was wrong with its input and how it was kept
FLAG_INVALID_UTF8 = "invalid_utf8"  # undecodable bytes replaced by U+FFFD
FLAG_TRUNCATED = "truncated"  # longer than max_record_bytes: the tail was cut
FLAG_INGEST_TIME = "ingest_time"  # time missing or unparseable: the broker's timestamp is used
FLAG_CONTROL_CHARS = "control_chars"  # NULs and other control characters were stripped
FLAG_UNPARSED_JSON = "unparsed_json"  # looked like JSON but was not: kept as text

LEVELS = ("trace", "debug", "info", "notice", "warning", "error", "critical")


@dataclass(frozen=True, slots=True)
class Http:
    method: str | None = None
    path: str | None = None
    status: int | None = None
    duration_ms: float | None = None
    #: the client address's pseudonym (never the address)
    remote: str | None = None
    user_agent: str | None = None

    def is_empty(self) -> bool:
        return all(
            v is None
            for v in (
                self.method,
                self.path,
                self.status,
                self.duration_ms,
                self.remote,
                self.user_agent,
            )
        )


@dataclass(frozen=True, slots=True)
class Parsed:
    """What a parser found in one record, before redaction and classification (raw values)."""

    format: str
    message: str
    time: str | float | int | None = None
    level: str | None = None
    logger: str | None = None
    service: str | None = None
    host: str | None = None
    trace_id: str | None = None
    span_id: str | None = None
    http: dict[str, Any] = field(default_factory=dict)
    attributes: dict[str, Any] = field(default_factory=dict)
    #: exception text (stack trace) when it came apart from the message
    stack: str | None = None
    exception_type: str | None = None
    flags: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class LogRecord:
    """A stored log record: redacted, classified, with where it came from."""

    id: str  # deterministic from topic/partition/offset: a replay overwrites, never duplicates
    source: str  # "topic:partition:offset"
    time: datetime  # UTC
    ingest_time: datetime  # UTC, the broker's timestamp
    service: str
    host: str | None
    level: str
    message: str
    logger: str | None
    trace_id: str | None
    span_id: str | None
    http: Http
    attributes: dict[str, str]
    format: str
    exception_type: str | None = None
    fingerprint: str | None = None
    redactions: dict[str, int] = field(default_factory=dict)
    flags: frozenset[str] = frozenset()

    @property
    def is_error(self) -> bool:
        return self.fingerprint is not None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (the lake's value and the API's answer)."""
        return {
            "id": self.id,
            "source": self.source,
            "time": self.time.isoformat(),
            "ingest_time": self.ingest_time.isoformat(),
            "service": self.service,
            "host": self.host,
            "level": self.level,
            "message": self.message,
            "logger": self.logger,
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "http": None
            if self.http.is_empty()
            else {
                "method": self.http.method,
                "path": self.http.path,
                "status": self.http.status,
                "duration_ms": self.http.duration_ms,
                "remote": self.http.remote,
                "user_agent": self.http.user_agent,
            },
            "attributes": self.attributes,
            "format": self.format,
            "exception_type": self.exception_type,
            "fingerprint": self.fingerprint,
            "redactions": self.redactions,
            "flags": sorted(self.flags),
        }
