"""Redacted records to the raw zone of the lake (Parquet, by topic and event hour).

The value stored is the *redacted, structured* record as JSON, never the bytes as received:
the raw zone must hold nothing in clear either. Shipper headers are dropped for the same reason.
"""

from __future__ import annotations

import orjson

from vigie_stores.lake import RawRecord

from ..handlers.record import LogRecord


def raw_record(record: LogRecord) -> RawRecord:
    topic, partition, offset = record.source.rsplit(":", 2)
    return RawRecord(
        topic=topic,
        partition=int(partition),
        offset=int(offset),
        key=record.service.encode(),
        value=orjson.dumps(record.to_json()),
        event_time=record.time,
        ingest_time=record.ingest_time,
    )

