"""Cassandra tables of the clickstream: events per (user, day), sessions per user.

Writes are plain INSERTs keyed by the event (or session) id: an upsert, so a re-delivered
event or a re-emitted session lands on the same row. They go through
``CassandraStore.execute_many`` (prepared, bounded concurrency on the driver's thread).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from vigie_stores.cassandra import CassandraStore

from ..handlers.events import ROW_COLUMNS

EVENTS_TABLE = "clickstream_events"
SESSIONS_TABLE = "clickstream_sessions"

SESSION_COLUMNS = (
    "user_id",
    "started_at",
    "session_id",
    "ended_at",
    "event_count",
    "page_views",
    "converted",
    "checkout_abandoned",
    "failed_logins",
    "device_family",
)


def schema(keyspace: str) -> list[str]:
    return [
        f"""CREATE TABLE IF NOT EXISTS {keyspace}.{EVENTS_TABLE} (
            user_id text, day date, event_time timestamp, event_id text,
            name text, app_id text, platform text, anonymous_id text,
            page_url text, referrer text, user_agent text, ip_pseudonym text,
            properties map<text, text>,
            device_family text, browser_family text, os_family text, country_code text,
            producer text, ingested_at timestamp,
            PRIMARY KEY ((user_id, day), event_time, event_id)
        ) WITH CLUSTERING ORDER BY (event_time ASC, event_id ASC)""",
        f"""CREATE TABLE IF NOT EXISTS {keyspace}.{SESSIONS_TABLE} (
            user_id text, started_at timestamp, session_id text, ended_at timestamp,
            event_count int, page_views int, converted boolean, checkout_abandoned boolean,
            failed_logins int, device_family text,
            PRIMARY KEY ((user_id), started_at, session_id)
        ) WITH CLUSTERING ORDER BY (started_at DESC, session_id ASC)""",
    ]


def _insert(keyspace: str, table: str, columns: Sequence[str]) -> str:
    marks = ", ".join("?" for _ in columns)
    # identifiers come from settings validated as plain CQL identifiers, values are bound
    return f"INSERT INTO {keyspace}.{table} ({', '.join(columns)}) VALUES ({marks})"  # noqa: S608


class ClickstreamTables:
    def __init__(self, store: CassandraStore, keyspace: str, concurrency: int = 128) -> None:
        self.store = store
        self.keyspace = keyspace
        self.concurrency = concurrency
        self.insert_event = _insert(keyspace, EVENTS_TABLE, ROW_COLUMNS)
        self.insert_session = _insert(keyspace, SESSIONS_TABLE, SESSION_COLUMNS)

    async def ensure(self) -> None:
        await self.store.ensure_schema(self.keyspace, schema(self.keyspace))
        await self.store.prepare(self.insert_event)
        await self.store.prepare(self.insert_session)

    async def write_events(self, rows: Sequence[tuple[Any, ...]]) -> int:
        if not rows:
            return 0
        return await self.store.execute_many(self.insert_event, rows, concurrency=self.concurrency)

    async def write_sessions(self, rows: Sequence[tuple[Any, ...]]) -> int:
        if not rows:
            return 0
        return await self.store.execute_many(
            self.insert_session, rows, concurrency=self.concurrency
        )

    async def events(
        self, user_id: str, start: datetime, end: datetime, limit: int
    ) -> list[dict[str, Any]]:
        """A user's events with ``start <= event_time < end``, oldest first, one day at a time."""
        cql = (
            f"SELECT {', '.join(ROW_COLUMNS)} FROM {self.keyspace}.{EVENTS_TABLE} "  # noqa: S608
            "WHERE user_id = ? AND day = ? AND event_time >= ? AND event_time < ? LIMIT ?"
        )
        found: list[dict[str, Any]] = []
        for day in _days(start, end):
            if len(found) >= limit:
                break
            found.extend(
                await self.store.execute(cql, (user_id, day, start, end, limit - len(found)))
            )
        return found

    async def sessions(self, user_id: str, limit: int) -> list[dict[str, Any]]:
        """A user's sessions, newest first."""
        cql = (
            f"SELECT {', '.join(SESSION_COLUMNS)} FROM {self.keyspace}.{SESSIONS_TABLE} "  # noqa: S608
            "WHERE user_id = ? LIMIT ?"
        )
        return await self.store.execute(cql, (user_id, limit))


def _days(start: datetime, end: datetime) -> list[date]:
    first, last = start.astimezone(UTC).date(), end.astimezone(UTC).date()
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def session_row(fields: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(fields[c] for c in SESSION_COLUMNS)
