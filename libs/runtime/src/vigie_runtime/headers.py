"""The Kafka headers vigie writes: what an event is, and why a dead letter failed.

Headers let a consumer route, filter or dead-letter a record without decoding its value, and
let ``vigie-dlq`` replay a dead letter to where it came from.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

from vigie_contracts import Envelope

EVENT_TYPE = "vigie.event_type"
SCHEMA_VERSION = "vigie.schema_version"
EVENT_ID = "vigie.event_id"
#: on fraud.labels, the label's value (``fraud`` / ``genuine``): almost every label is a genuine
#: one (one per transaction, after the label delay), and a consumer that needs only frauds skips
#: the others without decoding them
LABEL_VALUE = "vigie.label_value"

DLQ_PREFIX = "vigie.dlq."
DLQ_ERROR = "vigie.dlq.error"
DLQ_ERROR_TYPE = "vigie.dlq.error_type"
DLQ_TOPIC = "vigie.dlq.topic"
DLQ_PARTITION = "vigie.dlq.partition"
DLQ_OFFSET = "vigie.dlq.offset"
DLQ_TIMESTAMP = "vigie.dlq.timestamp"
DLQ_SERVICE = "vigie.dlq.service"
DLQ_FAILED_AT = "vigie.dlq.failed_at"
DLQ_REPLAYED_FROM = "vigie.dlq.replayed_from"

#: the error text is for humans; a stack-trace-sized one would bloat every dead letter
MAX_ERROR_BYTES = 2048


def envelope_headers(envelope: Envelope[Any]) -> list[tuple[str, bytes]]:
    return [
        (EVENT_TYPE, envelope.event_type.encode()),
        (SCHEMA_VERSION, str(envelope.schema_version).encode()),
        (EVENT_ID, envelope.event_id.encode()),
    ]


def error_type_of(exc: BaseException) -> str:
    cls = type(exc)
    return f"{cls.__module__}.{cls.__qualname__}"


def dead_letter_headers(
    *,
    original: Iterable[tuple[str, bytes]],
    error: BaseException,
    topic: str,
    partition: int,
    offset: int,
    timestamp: int,
    service: str,
    now_ms: int | None = None,
) -> list[tuple[str, bytes]]:
    """The original headers (minus stale ``vigie.dlq.*`` of an earlier failure, but keeping
    ``replayed_from``), then why and where this record failed."""
    kept = [(k, v) for k, v in original if not k.startswith(DLQ_PREFIX) or k == DLQ_REPLAYED_FROM]
    message = (str(error) or type(error).__name__).encode("utf-8", "replace")[:MAX_ERROR_BYTES]
    failed_at = now_ms if now_ms is not None else int(time.time() * 1000)
    return [
        *kept,
        (DLQ_ERROR, message),
        (DLQ_ERROR_TYPE, error_type_of(error).encode()),
        (DLQ_TOPIC, topic.encode()),
        (DLQ_PARTITION, str(partition).encode()),
        (DLQ_OFFSET, str(offset).encode()),
        (DLQ_TIMESTAMP, str(timestamp).encode()),
        (DLQ_SERVICE, service.encode()),
        (DLQ_FAILED_AT, str(failed_at).encode()),
    ]


def header(headers: Sequence[tuple[str, bytes]] | None, name: str) -> str | None:
    """The last value of ``name`` decoded as UTF-8 (the last one wins, as in Kafka Streams)."""
    found = None
    for key, value in headers or ():
        if key == name:
            found = value
    return found.decode("utf-8", "replace") if found is not None else None


def replay_headers(
    headers: Sequence[tuple[str, bytes]], dead_letter_position: str
) -> list[tuple[str, bytes]]:
    """A dead letter's headers as they go back to the original topic: the original ones plus
    where the replay came from (so a second failure can be traced to its first)."""
    kept = [(k, v) for k, v in headers if not k.startswith(DLQ_PREFIX)]
    return [*kept, (DLQ_REPLAYED_FROM, dead_letter_position.encode())]
