"""Avro bytes ↔ ``Click`` without building pydantic envelopes (the pipeline's fast path).

Same framing and schemas as ``vigie_contracts.serde`` (single-object encoding, the committed
``.avsc``); only the pydantic step is replaced by ``handlers.events.click_from_record``.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import fastavro

from vigie_contracts import DecodeError
from vigie_contracts.schemas import current
from vigie_contracts.serde import SINGLE_OBJECT_MARKER, writer_schema

from ..handlers.events import Click, click_from_record, enriched_record
from ..settings import ValidationLimits

_EVENT_TYPE = "clickstream_event"


def decode_record(data: bytes | None) -> dict[str, Any]:
    """Bytes → the envelope as a dict, resolved to the current schema; ``DecodeError`` if not."""
    if data is None:
        raise DecodeError("tombstone (null value) on clickstream.raw")
    writer, start = writer_schema(data)
    if writer.event_type != _EVENT_TYPE:
        raise DecodeError(f"{writer.subject} on clickstream.raw, expected {_EVENT_TYPE}")
    reader = current(_EVENT_TYPE)
    try:
        record = fastavro.schemaless_reader(
            io.BytesIO(memoryview(data)[start:]),
            writer.parsed,
            None if writer is reader else reader.parsed,
        )
    except (EOFError, ValueError, TypeError, IndexError, UnicodeDecodeError) as exc:
        raise DecodeError(f"corrupt {writer.subject} body: {exc}") from exc
    if not isinstance(record, dict):
        raise DecodeError(f"{writer.subject} body is not a record")
    return record


def click_decoder(
    limits: ValidationLimits, clock: Callable[[], datetime] | None = None
) -> Callable[[bytes | None], Click]:
    """A ``vigie_runtime.Decoder``: bad bytes or a bad event raise, and the loop dead-letters."""
    now = clock or (lambda: datetime.now(UTC))

    def decode(data: bytes | None) -> Click:
        return click_from_record(decode_record(data), now=now(), limits=limits)

    return decode


def encode_click(click: Click, producer: str) -> bytes:
    """The enriched envelope for ``clickstream.events``, in the contracts' framing."""
    version = current(_EVENT_TYPE)
    record = enriched_record(click, producer)
    record["schema_version"] = version.version
    buf = io.BytesIO()
    buf.write(SINGLE_OBJECT_MARKER)
    buf.write(version.fingerprint)
    fastavro.schemaless_writer(buf, version.parsed, record)
    return buf.getvalue()
