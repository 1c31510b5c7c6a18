"""MongoDB: the alerts' history (one document per alert, its newest state) and the webhooks'
durable outbox (one document per alert change and webhook, until delivered).

FerretDB applies updates at a few hundred a second: every write here is a batch through
``MongoStore.write_many_versioned`` (the alert's revision is its version, so an older state
never overwrites a newer one), and delivered outbox entries are marked in batches.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from vigie_contracts.events.alerts import AlertCategory, AlertStatus, Severity
from vigie_runtime import get_logger
from vigie_stores import StoreError
from vigie_stores.mongo import IndexSpec, MongoStore, VersionedDoc

from ..handlers import AlertChange, Incident

ALERTS = "alerts"
OUTBOX = "alert_outbox"

_log = get_logger(__name__)

OutboxState = Literal["pending", "delivered", "rejected", "expired"]


def _dt(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC)


def _epoch(value: Any) -> float | None:
    return value.timestamp() if isinstance(value, datetime) else None


def alert_document(change: AlertChange, silenced: bool) -> dict[str, Any]:
    i = change.incident
    return {
        "rule": i.rule,
        "category": i.category.value,
        "severity": i.severity.value,
        "status": i.status.value,
        "fingerprint": i.fingerprint,
        "summary": i.summary,
        "count": i.count,
        "first_seen": _dt(i.first_seen),
        "last_seen": _dt(i.last_seen),
        "labels": dict(i.labels),
        "revision": i.revision,
        "change": change.change.value,
        "updated_at": _dt(change.at),
        "acknowledged_by": i.acknowledged_by,
        "resolved_by": i.resolved_by,
        "resolved_at": _dt(i.resolved_at),
        "transaction_ids": list(i.transaction_ids),
        "silenced": silenced,
    }


def incident_of(doc: Mapping[str, Any]) -> Incident:
    """An incident as the history last saw it (to carry on after a restart)."""
    return Incident(
        alert_id=str(doc["_id"]),
        rule=doc["rule"],
        category=AlertCategory(doc["category"]),
        severity=Severity(doc["severity"]),
        fingerprint=doc["fingerprint"],
        labels=dict(doc.get("labels") or {}),
        summary=doc["summary"],
        count=int(doc["count"]),
        first_seen=_epoch(doc["first_seen"]) or 0.0,
        last_seen=_epoch(doc["last_seen"]) or 0.0,
        status=AlertStatus(doc["status"]),
        revision=int(doc["revision"]),
        published_at=_epoch(doc.get("updated_at")) or 0.0,
        acknowledged_by=doc.get("acknowledged_by"),
        resolved_by=doc.get("resolved_by"),
        resolved_at=_epoch(doc.get("resolved_at")),
        transaction_ids=list(doc.get("transaction_ids") or []),
    )


def public(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A history document as the REST API shows it."""
    out = {k: v for k, v in doc.items() if not k.startswith("_")}
    out["alert_id"] = str(doc["_id"])
    for key, value in out.items():
        if isinstance(value, datetime):
            out[key] = value.astimezone(UTC).isoformat()
    return out


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    destination: str
    event_id: str
    alert_id: str
    #: the exact bytes every attempt sends (signed per attempt with a fresh timestamp)
    body: bytes
    created_at: float

    @property
    def id(self) -> str:
        return f"{self.destination}:{self.event_id}"

    def document(self, state: OutboxState, **extra: Any) -> dict[str, Any]:
        return {
            "destination": self.destination,
            "event_id": self.event_id,
            "alert_id": self.alert_id,
            "body": self.body.decode(),
            "created_at": self.created_at,
            "state": state,
            **extra,
        }


class AlertHistory:
    def __init__(self, store: MongoStore, *, flush_interval_s: float = 0.5) -> None:
        self.store = store
        self._flush_interval = flush_interval_s
        self._done: dict[str, tuple[OutboxEntry, OutboxState, dict[str, Any]]] = {}

    async def ensure_indexes(self) -> None:
        for spec in (
            (("status", 1), ("last_seen", -1)),
            (("rule", 1), ("last_seen", -1)),
            (("category", 1), ("last_seen", -1)),
            (("fingerprint", 1),),
            (("last_seen", -1),),
        ):
            await self.store.ensure_indexes(ALERTS, [IndexSpec(keys=spec)])
        await self.store.ensure_indexes(OUTBOX, [IndexSpec(keys=(("state", 1), ("created_at", 1)))])

    async def save(
        self, changes: Sequence[tuple[AlertChange, bool]], entries: Sequence[OutboxEntry]
    ) -> None:
        """The newest state of each alert, and the new outbox entries, in two batches."""
        docs = [
            VersionedDoc(c.incident.alert_id, c.incident.revision, alert_document(c, silenced))
            for c, silenced in changes
        ]
        outbox = [VersionedDoc(e.id, 1, e.document("pending", attempts=0)) for e in entries]
        writes = []
        if docs:
            writes.append(self.store.write_many_versioned(ALERTS, docs))
        if outbox:
            writes.append(self.store.write_many_versioned(OUTBOX, outbox))
        await asyncio.gather(*writes)

    # -- reads -------------------------------------------------------------------------------

    async def open_incidents(self) -> list[Incident]:
        docs = await self.store.find(
            ALERTS, {"status": {"$in": [AlertStatus.FIRING.value, AlertStatus.ACKNOWLEDGED.value]}}
        )
        return [incident_of(doc) for doc in docs]

    async def get(self, alert_id: str) -> dict[str, Any] | None:
        return await self.store.get(ALERTS, alert_id)

    async def find(
        self, filters: Mapping[str, Any], *, limit: int, since: datetime | None = None
    ) -> list[dict[str, Any]]:
        query: dict[str, Any] = {k: v for k, v in filters.items() if v is not None}
        if since is not None:
            query["last_seen"] = {"$gte": since}
        return await self.store.find(ALERTS, query, sort=[("last_seen", -1)], limit=limit)

    async def pending(self) -> list[OutboxEntry]:
        docs = await self.store.find(OUTBOX, {"state": "pending"}, sort=[("created_at", 1)])
        return [
            OutboxEntry(
                destination=d["destination"],
                event_id=d["event_id"],
                alert_id=d["alert_id"],
                body=d["body"].encode(),
                created_at=float(d["created_at"]),
            )
            for d in docs
        ]

    async def outbox_states(self) -> dict[str, str]:
        """Outbox entry id → state (for tests and the API's delivery view)."""
        docs = await self.store.find(OUTBOX, {})
        return {str(d["_id"]): d["state"] for d in docs}

    # -- outbox completion -------------------------------------------------------------------

    def finished(self, entry: OutboxEntry, state: OutboxState, attempts: int) -> None:
        """Mark ``entry`` done at the next flush (a crash before it resends it, with the same
        idempotency key)."""
        self._done[entry.id] = (entry, state, {"attempts": attempts, "finished_at": time.time()})

    async def flush(self) -> None:
        if not self._done:
            return
        done, self._done = self._done, {}
        items = [
            VersionedDoc(entry.id, 2, entry.document(state, **extra))
            for entry, state, extra in done.values()
        ]
        try:
            await self.store.write_many_versioned(OUTBOX, items)
        except StoreError as exc:
            _log.warning("outbox marks not written, will retry", error=str(exc))
            self._done = {**done, **self._done}

    @contextlib.asynccontextmanager
    async def flushing(self) -> AsyncIterator[None]:
        """Mark finished entries every ``flush_interval_s``, and once more at the end."""

        async def loop() -> None:
            while True:
                await asyncio.sleep(self._flush_interval)
                await self.flush()

        task = asyncio.create_task(loop(), name="outbox-flush")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await self.flush()
