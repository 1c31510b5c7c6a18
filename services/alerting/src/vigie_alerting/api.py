"""The REST API: list and filter alerts, acknowledge, resolve, label fraud alerts, reload rules.

- ``GET  /v1/alerts?status=&category=&severity=&rule=&fingerprint=&since=&limit=``, newest first
- ``GET  /v1/alerts/{alert_id}``
- ``POST /v1/alerts/{alert_id}/acknowledge`` ``{"by": "..."}``
- ``POST /v1/alerts/{alert_id}/resolve`` ``{"by": "..."}``
- ``POST /v1/alerts/{alert_id}/label`` ``{"label": "fraud"|"genuine", "analyst": "...",
  "transaction_ids": [...]}`` (default: the alert's transactions) → ``fraud.labels``
- ``GET  /v1/rules``; ``POST /v1/rules/reload`` (422 with every problem when the file is bad)
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field

from vigie_contracts.events.alerts import AlertCategory, AlertStatus, Severity
from vigie_contracts.events.fraud import LabelValue

from .adapters.history import public
from .alerter import Alerter, AlertNotFound, NotAFraudAlert
from .handlers import AlertChange
from .rules import RulesError


class Operator(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    by: str = Field(min_length=1, max_length=200)


class Verdict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    label: LabelValue
    analyst: str = Field(min_length=1, max_length=200)
    transaction_ids: list[str] = Field(default_factory=list, max_length=1000)


def _changed(change: AlertChange) -> dict[str, Any]:
    incident = change.incident
    return {
        "alert_id": incident.alert_id,
        "status": incident.status.value,
        "revision": incident.revision,
        "change": change.change.value,
    }


def router(alerter: Alerter, *, max_limit: int) -> APIRouter:
    api = APIRouter(prefix="/v1", tags=["alerts"])

    @api.get("/alerts")
    async def list_alerts(
        status: AlertStatus | None = None,
        category: AlertCategory | None = None,
        severity: Severity | None = None,
        rule: str | None = None,
        fingerprint: str | None = None,
        since: datetime | None = None,
        limit: Annotated[int, Query(ge=1)] = 100,
    ) -> dict[str, Any]:
        if since is not None and since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        docs = await alerter.history.find(
            {
                "status": status.value if status else None,
                "category": category.value if category else None,
                "severity": severity.value if severity else None,
                "rule": rule,
                "fingerprint": fingerprint,
            },
            limit=min(limit, max_limit),
            since=since,
        )
        return {"count": len(docs), "alerts": [public(d) for d in docs]}

    @api.get("/alerts/{alert_id}")
    async def get_alert(alert_id: str) -> dict[str, Any]:
        doc = await alerter.history.get(alert_id)
        if doc is None:
            raise HTTPException(404, f"no alert {alert_id!r}")
        return public(doc)

    async def operate(alert_id: str, action: str, by: str) -> dict[str, Any]:
        try:
            if action == "acknowledge":
                change = await alerter.acknowledge(alert_id, by)
            else:
                change = await alerter.resolve(alert_id, by)
        except AlertNotFound:
            doc = await alerter.history.get(alert_id)
            if doc is None:
                raise HTTPException(404, f"no alert {alert_id!r}") from None
            raise HTTPException(409, f"alert {alert_id!r} is {doc['status']}") from None
        return _changed(change)

    @api.post("/alerts/{alert_id}/acknowledge")
    async def acknowledge(alert_id: str, body: Operator) -> dict[str, Any]:
        return await operate(alert_id, "acknowledge", body.by)

    @api.post("/alerts/{alert_id}/resolve")
    async def resolve(alert_id: str, body: Operator) -> dict[str, Any]:
        return await operate(alert_id, "resolve", body.by)

    @api.post("/alerts/{alert_id}/label")
    async def label(alert_id: str, body: Verdict) -> dict[str, Any]:
        try:
            ids = await alerter.label(alert_id, body.label, body.analyst, body.transaction_ids)
        except AlertNotFound:
            raise HTTPException(404, f"no alert {alert_id!r}") from None
        except NotAFraudAlert as exc:
            raise HTTPException(409, str(exc)) from None
        return {"alert_id": alert_id, "label": body.label.value, "transaction_ids": ids}

    @api.get("/rules")
    async def list_rules() -> dict[str, Any]:
        ruleset = alerter.ruleset
        return {
            "path": str(alerter.settings.rules_path),
            "rules": [r.model_dump(mode="json") for r in ruleset.rules],
            "webhooks": [
                w.model_dump(mode="json", include={"name", "url", "match", "send_updates"})
                for w in ruleset.webhooks
            ],
            "silences": [s.model_dump(mode="json") for s in ruleset.silences],
        }

    @api.post("/rules/reload")
    async def reload() -> dict[str, Any]:
        try:
            ruleset = await alerter.reload()
        except RulesError as exc:
            raise HTTPException(422, str(exc)) from None
        return {"rules": len(ruleset.active), "webhooks": len(ruleset.webhooks)}

    return api


def mount(app: FastAPI, alerter: Alerter, *, max_limit: int) -> None:
    app.include_router(router(alerter, max_limit=max_limit))
