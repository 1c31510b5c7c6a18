"""Debezium change events (JSON converter, schemas disabled) as typed values.

The envelope is ``{before, after, source: {lsn, txId, ts_ms, snapshot, table, ...}, op, ts_ms}``;
``op`` is ``c`` create, ``u`` update, ``d`` delete, ``r`` snapshot read, ``t`` truncate. A delete is
followed by a tombstone (null value) for log compaction: the loop skips those. Columns not known
to this service (a column added to the OLTP table) are carried along, never refused.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import orjson

from ..errors import BadChange

Row = dict[str, Any]


class Op(StrEnum):
    CREATE = "c"
    UPDATE = "u"
    DELETE = "d"
    READ = "r"  # snapshot
    TRUNCATE = "t"


@dataclass(frozen=True, slots=True)
class Change:
    table: str
    op: Op
    before: Row | None
    after: Row | None
    #: PostgreSQL log position of this change: orders the changes of one row
    lsn: int
    tx_id: int | None
    #: commit time at the source (ms since epoch)
    source_ts_ms: int
    #: when Debezium processed it (ms since epoch)
    ts_ms: int
    snapshot: bool
    #: the rest of ``source`` (connector version, db, schema, sequence...), kept for the lake
    source: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def row(self) -> Row | None:
        """The row's state after the change, or its last state for a delete."""
        return self.after if self.after is not None else self.before

    @property
    def key(self) -> int | str:
        row = self.row
        if row is None or row.get("id") is None:
            raise BadChange("no_primary_key", f"{self.table} change at lsn {self.lsn} has no id")
        pk = row["id"]
        if not isinstance(pk, int | str) or isinstance(pk, bool):
            raise BadChange("no_primary_key", f"{self.table} id {pk!r} is not an int or a string")
        return pk

    def to_json(self) -> dict[str, Any]:
        """The Debezium envelope again (with whatever the rows now hold)."""
        return {
            "before": self.before,
            "after": self.after,
            "source": {
                **self.source,
                "table": self.table,
                "lsn": self.lsn,
                "txId": self.tx_id,
                "ts_ms": self.source_ts_ms,
                "snapshot": "true" if self.snapshot else "false",
            },
            "op": self.op.value,
            "ts_ms": self.ts_ms,
        }


def is_heartbeat(topic: str) -> bool:
    return topic.startswith("__debezium-heartbeat")


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadChange("unparseable", f"{what} is not an integer: {value!r}")
    return value


def _row(value: Any, what: str) -> Row | None:
    if value is None or isinstance(value, dict):
        return value
    raise BadChange("unparseable", f"{what} is not an object")


def parse_change(value: bytes, tables: Collection[str]) -> Change:
    """Bytes of a Debezium envelope → a ``Change``; ``BadChange`` says why not."""
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise BadChange("unparseable", f"not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise BadChange("unparseable", "not a JSON object")
    if "schema" in doc and "payload" in doc:  # a converter with schemas.enable=true
        doc = doc["payload"]
        if not isinstance(doc, dict):
            raise BadChange("unparseable", "payload is not a JSON object")
    source = doc.get("source")
    if not isinstance(source, dict):
        raise BadChange("unparseable", "no source block")
    try:
        op = Op(str(doc.get("op")))
    except ValueError:
        raise BadChange("unparseable", f"unknown op {doc.get('op')!r}") from None
    table = source.get("table")
    if not isinstance(table, str):
        raise BadChange("unparseable", "source.table missing")
    if table not in tables:
        raise BadChange("unknown_table", f"table {table!r} is not ingested")
    before, after = _row(doc.get("before"), "before"), _row(doc.get("after"), "after")
    if op in (Op.CREATE, Op.READ, Op.UPDATE) and after is None:
        raise BadChange("unparseable", f"op {op.value} without an after image")
    if op is Op.DELETE and before is None:
        raise BadChange("unparseable", "delete without a before image (not even the key)")
    source_ts = _int(source.get("ts_ms"), "source.ts_ms")
    tx_id = source.get("txId")
    snapshot = source.get("snapshot")
    rest = {
        k: v for k, v in source.items() if k not in ("table", "lsn", "txId", "ts_ms", "snapshot")
    }
    return Change(
        table=table,
        op=op,
        before=before,
        after=after,
        lsn=_int(source.get("lsn"), "source.lsn"),
        tx_id=tx_id if isinstance(tx_id, int) and not isinstance(tx_id, bool) else None,
        source_ts_ms=source_ts,
        ts_ms=doc["ts_ms"] if isinstance(doc.get("ts_ms"), int) else source_ts,
        # "true", "first", "last", "incremental" (older versions: a boolean)
        snapshot=snapshot not in (None, False, "false"),
        source=rest,
    )
