"""The query API: logs of a service over a time range (by level), of a trace, of an error."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, HTTPException, Query

from .adapters.cassandra import LogStore
from .handlers.record import LEVELS


def _aware(value: datetime | None, default: datetime) -> datetime:
    if value is None:
        return default
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _row(row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in row.items():
        if key in ("hour", "day"):
            continue
        if isinstance(value, datetime):
            value = _aware(value, value).isoformat()
        elif isinstance(value, Mapping):  # the driver's OrderedMapSerializedKey
            value = dict(value)
        elif isinstance(value, Iterable) and not isinstance(value, str | bytes):
            value = sorted(value)  # the driver's SortedSet
        elif key == "id":
            value = str(value)
        out[key] = value
    return out


def router(store: LogStore, *, max_limit: int, max_hours: int) -> APIRouter:
    api = APIRouter(prefix="/v1/logs", tags=["logs"])

    @api.get("")
    async def by_service(
        service: str,
        start: datetime | None = None,
        end: datetime | None = None,
        level: Annotated[list[str] | None, Query()] = None,
        limit: Annotated[int, Query(ge=1)] = 100,
    ) -> dict[str, Any]:
        """Records of ``service`` in [start, end) (default: the last hour), newest first."""
        now = datetime.now(UTC)
        end_at = _aware(end, now)
        start_at = _aware(start, end_at - timedelta(hours=1))
        if start_at >= end_at:
            raise HTTPException(422, "start must be before end")
        if end_at - start_at > timedelta(hours=max_hours):
            raise HTTPException(422, f"time range longer than {max_hours} hours")
        levels = None
        if level:
            wanted = {value.lower() for value in level}
            unknown = wanted - set(LEVELS)
            if unknown:
                raise HTTPException(422, f"unknown levels {sorted(unknown)}; known: {LEVELS}")
            levels = frozenset(wanted)
        rows = await store.by_service(
            service, start_at, end_at, levels=levels, limit=min(limit, max_limit)
        )
        return {"service": service, "count": len(rows), "records": [_row(r) for r in rows]}

    @api.get("/traces/{trace_id}")
    async def by_trace(trace_id: str, limit: Annotated[int, Query(ge=1)] = 1000) -> dict[str, Any]:
        """Every record of one trace, oldest first, across services."""
        rows = await store.by_trace(trace_id, min(limit, max_limit))
        return {
            "trace_id": trace_id.lower(),
            "count": len(rows),
            "records": [_row(r) for r in rows],
        }

    @api.get("/errors/{fingerprint}")
    async def by_fingerprint(
        fingerprint: str,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: Annotated[int, Query(ge=1)] = 100,
    ) -> dict[str, Any]:
        """Occurrences of one error (same fingerprint) in [start, end) (default: 24 h)."""
        end_at = _aware(end, datetime.now(UTC))
        start_at = _aware(start, end_at - timedelta(hours=24))
        if start_at >= end_at:
            raise HTTPException(422, "start must be before end")
        if end_at - start_at > timedelta(hours=max_hours):
            raise HTTPException(422, f"time range longer than {max_hours} hours")
        rows = await store.by_fingerprint(fingerprint, start_at, end_at, min(limit, max_limit))
        return {"fingerprint": fingerprint, "count": len(rows), "records": [_row(r) for r in rows]}

    return api


def mount(app: FastAPI, store: LogStore, *, max_limit: int, max_hours: int) -> None:
    app.include_router(router(store, max_limit=max_limit, max_hours=max_hours))
