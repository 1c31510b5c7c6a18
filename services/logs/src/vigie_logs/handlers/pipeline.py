"""One raw Kafka record → a redacted, classified ``LogRecord`` (+ a ``SecurityEvent``).

The order matters: parse, then redact *every* text field, and only then classify and build
what leaves the service, so nothing downstream ever sees a value in clear.
"""

from __future__ import annotations

import re
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from vigie_contracts import Envelope
from vigie_contracts.events.logs import SecurityEvent

from .classify import account_of, fingerprint, security_category
from .parse import decode_bytes, is_binary, normalise_level, parse_line, parse_time
from .record import FLAG_INGEST_TIME, Http, LogRecord, Parsed
from .redact import MARKER, SENSITIVE_KEY, Redactor

#: namespace of record ids: uuid5(topic:partition:offset) is the same on every replay
RECORD_NAMESPACE = uuid.UUID("5b0e3f4e-6c1d-4a53-9d1e-6f0c1f3a7b21")
_METHOD = re.compile(r"^[A-Z]{3,12}$")
_HEX_ID = re.compile(r"^[0-9a-fA-F]{8,64}$")
_MAX_ATTRIBUTES = 64
_MAX_ATTRIBUTE_CHARS = 2048
_MAX_MESSAGE_CHARS = 32_768
_MAX_SECURITY_MESSAGE = 8192


class BadRecord(ValueError):
    """A record that is not a log line at all (empty, binary): dead-lettered with this reason."""


@dataclass(frozen=True, slots=True)
class Source:
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None

    @property
    def position(self) -> str:
        return f"{self.topic}:{self.partition}:{self.offset}"


@dataclass(frozen=True, slots=True)
class Outcome:
    record: LogRecord
    security: SecurityEvent | None = None


def check_raw(value: bytes | None) -> bytes:
    """The decoder's test: what cannot be a log line goes to the dead-letter topic at once."""
    if value is None:
        raise BadRecord("tombstone (null value): not a log record")
    if not value.strip():
        raise BadRecord("empty record")
    if is_binary(value):
        raise BadRecord(f"binary payload ({len(value)} bytes), not text")
    return value


def record_id(source: Source) -> str:
    return str(uuid.uuid5(RECORD_NAMESPACE, source.position))


def process(raw: bytes, source: Source, redactor: Redactor, *, max_bytes: int) -> Outcome:
    ingest = datetime.fromtimestamp(source.timestamp_ms / 1000, UTC)
    text, flags = decode_bytes(raw, max_bytes)
    parsed = parse_line(text)
    counts: Counter[str] = Counter()
    red = redactor.redact

    time = parse_time(parsed.time, ingest)
    all_flags = set(flags | parsed.flags)
    if time is None:
        time = ingest
        all_flags.add(FLAG_INGEST_TIME)

    key_service = (source.key or b"").decode("utf-8", errors="replace").strip()
    service = _clean_name(red(key_service or parsed.service or "unknown", counts))
    message = red(parsed.message[:_MAX_MESSAGE_CHARS], counts)
    stack = red(parsed.stack[:_MAX_MESSAGE_CHARS], counts) if parsed.stack else None
    attributes = _attributes(parsed, redactor, counts)
    if stack is not None:
        attributes["stack_trace"] = stack
    http = _http(parsed.http, redactor, counts)
    level = normalise_level(parsed.level) or _guess_level(parsed, http)
    exception_type = parsed.exception_type
    is_error = level in ("error", "critical") or exception_type is not None
    fp = fingerprint(service, exception_type, message, stack) if is_error else None
    record = LogRecord(
        id=record_id(source),
        source=source.position,
        time=time,
        ingest_time=ingest,
        service=service,
        host=red(parsed.host, counts)[:256] if parsed.host else None,
        level=level,
        message=message,
        logger=red(parsed.logger, counts)[:256] if parsed.logger else None,
        trace_id=_hex_id(parsed.trace_id, attributes, "trace_id"),
        span_id=_hex_id(parsed.span_id, attributes, "span_id"),
        http=http,
        attributes=attributes,
        format=parsed.format,
        exception_type=exception_type[:256] if exception_type else None,
        fingerprint=fp,
        redactions=dict(counts),
        flags=frozenset(all_flags),
    )
    return Outcome(record, _security_event(record, counts))


def _clean_name(value: str) -> str:
    return re.sub(r"[^\w.:/-]", "_", value)[:128] or "unknown"


def _hex_id(value: str | None, attributes: dict[str, str], name: str) -> str | None:
    if not value:
        return None
    if _HEX_ID.match(value):
        return value.lower()
    attributes[name] = value[:128]  # not an OTel/W3C id: keep it, but not as a lookup key
    return None


def _stringify(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool | int | float):
        return orjson.dumps(value).decode()
    return orjson.dumps(value, default=str).decode()


def _attributes(parsed: Parsed, redactor: Redactor, counts: Counter[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in list(parsed.attributes.items())[:_MAX_ATTRIBUTES]:
        name = redactor.redact(str(key)[:128], counts)  # keys can carry PII too
        if SENSITIVE_KEY.match(name) and value not in (None, "", False):
            counts["secret"] += 1
            out[name] = MARKER.format("secret")
            continue
        out[name] = redactor.redact(_stringify(value)[:_MAX_ATTRIBUTE_CHARS], counts)
    return out


def _http(fields: dict[str, Any], redactor: Redactor, counts: Counter[str]) -> Http:
    if not fields:
        return Http()
    status: int | None = None
    try:
        raw_status = fields.get("status")
        status = int(raw_status) if raw_status is not None else None
    except (TypeError, ValueError):
        status = None
    if status is not None and not 100 <= status <= 599:
        status = None
    duration = fields.get("duration")
    remote = fields.get("remote")
    method = fields.get("method")
    path = fields.get("path")
    agent = fields.get("user_agent")
    return Http(
        method=str(method).upper() if method and _METHOD.match(str(method).upper()) else None,
        path=redactor.redact(str(path)[:2048], counts) if path else None,
        status=status,
        duration_ms=float(duration) if isinstance(duration, int | float) else None,
        # X-Forwarded-For lists the client first
        remote=redactor.redact_ip(str(remote).split(",")[0], counts) if remote else None,
        user_agent=redactor.redact(str(agent)[:512], counts) if agent else None,
    )


def _guess_level(parsed: Parsed, http: Http) -> str:
    if parsed.exception_type is not None:
        return "error"
    if http.status is not None:
        return "error" if http.status >= 500 else "warning" if http.status >= 400 else "info"
    return "info"


_IP_PSEUDONYM = re.compile(r"\bip:[0-9a-f]{32}\b")
_IP_KEYS = ("client_ip", "src_ip", "source_ip", "remote_addr", "ip", "peer")


def _security_event(record: LogRecord, counts: Counter[str]) -> SecurityEvent | None:
    category = security_category(
        record.message, record.logger, record.attributes, record.http.path, record.http.status
    )
    if category is None:
        return None
    source_ip = record.http.remote
    if source_ip is None:
        for key in _IP_KEYS:
            found = _IP_PSEUDONYM.search(record.attributes.get(key, ""))
            if found:
                source_ip = found.group(0)
                break
    if source_ip is None:
        found = _IP_PSEUDONYM.search(record.message)
        source_ip = found.group(0) if found else None
    attributes = {"record_id": record.id, "level": record.level, "format": record.format}
    if record.http.path:
        attributes["http_path"] = record.http.path[:512]
    if record.http.status is not None:
        attributes["http_status"] = str(record.http.status)
    if record.logger:
        attributes["logger"] = record.logger
    if counts:
        attributes["redacted"] = ",".join(f"{k}={v}" for k, v in sorted(counts.items()))
    return SecurityEvent(
        category=category,
        service=record.service,
        host=record.host,
        account=account_of(record.message, record.attributes),
        source_ip_pseudonym=source_ip,
        message=record.message[:_MAX_SECURITY_MESSAGE],
        occurred_at=record.time,
        trace_id=record.trace_id,
        attributes=attributes,
    )


def security_envelope(event: SecurityEvent, record: LogRecord, producer: str) -> Envelope[Any]:
    """Its event id is derived from the record's, so a replay republishes the same event."""
    return Envelope.wrap(
        event,
        producer=producer,
        event_time=event.occurred_at,
        event_id=str(uuid.uuid5(RECORD_NAMESPACE, "security:" + record.id)),
    )


def security_key(event: SecurityEvent) -> str:
    return event.account or event.source_ip_pseudonym or event.service
