"""The query API: a user's events in a time range, a user's sessions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, HTTPException, Query

from .adapters.tables import ClickstreamTables
from .settings import ApiSettings


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _iso(row: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in row.items():
        if isinstance(value, datetime):
            # Cassandra hands back naive UTC timestamps
            value = _aware(value).isoformat()
        elif key == "day":
            value = str(value)  # cassandra.util.Date prints as YYYY-MM-DD
        elif key == "properties":
            value = dict(value or {})
        out[key] = value
    return out


class QueryApi:
    def __init__(self, tables: ClickstreamTables, settings: ApiSettings) -> None:
        self.tables = tables
        self.settings = settings

    def routes(self, app: FastAPI) -> None:
        router = APIRouter()
        router.add_api_route("/users/{user_id}/events", self.events, methods=["GET"])
        router.add_api_route("/users/{user_id}/sessions", self.sessions, methods=["GET"])
        app.include_router(router)

    async def events(
        self,
        user_id: str,
        from_: Annotated[datetime | None, Query(alias="from")] = None,
        to: Annotated[datetime | None, Query()] = None,
        limit: Annotated[int | None, Query(ge=1)] = None,
    ) -> dict[str, Any]:
        """Events with ``from <= event_time < to`` (default: the last 24 hours), oldest first.
        Times without an offset are UTC."""
        end = _aware(to) if to is not None else datetime.now(UTC)
        start = _aware(from_) if from_ is not None else end - timedelta(days=1)
        if start >= end:
            raise HTTPException(422, "`from` must be before `to`")
        if end - start > self.settings.max_range:
            raise HTTPException(422, f"range longer than {self.settings.max_range}")
        rows = await self.tables.events(
            user_id, start, end, min(limit or self.settings.max_rows, self.settings.max_rows)
        )
        return {
            "user_id": user_id,
            "from": start.isoformat(),
            "to": end.isoformat(),
            "events": [_iso(r) for r in rows],
        }

    async def sessions(
        self, user_id: str, limit: Annotated[int | None, Query(ge=1)] = None
    ) -> dict[str, Any]:
        """Closed sessions, newest first."""
        rows = await self.tables.sessions(
            user_id, min(limit or self.settings.max_rows, self.settings.max_rows)
        )
        return {"user_id": user_id, "sessions": [_iso(r) for r in rows]}
