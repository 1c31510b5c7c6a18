"""The REST API: score a transaction synchronously; list, inspect, promote and roll back models.

``POST /v1/score`` takes the ``transaction_created`` payload (the contract's JSON) and answers
with what the stream would publish for it given the same features and models; it writes
nothing. Promote and rollback change the registry; every scorer picks the change up at its next
poll (this process at once).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, HTTPException, Query
from pydantic import BaseModel, ConfigDict, ValidationError

from vigie_contracts.events.payments import TransactionCreated
from vigie_featureset import TxFact

from .adapters.models import ModelRegistry
from .adapters.predictions import PredictionLog
from .handlers.lifecycle import LifecycleError, promote, rollback
from .handlers.scoring import summary
from .learner import day_metrics, metrics_doc
from .scorer import Scorer, ScorerMetrics
from .serving import Kinds, ModelSource


class PromoteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model_name: str
    reason: str = "manual"


class RollbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: ``kind@checkpoint``; none: back to the previous champion
    to_version: str | None = None
    reason: str = "manual"


@dataclass
class Api:
    kinds: Kinds
    registry: ModelRegistry
    source: ModelSource
    log: PredictionLog
    scorer: Scorer | None = None
    metrics: ScorerMetrics | None = None

    def router(self) -> APIRouter:
        api = APIRouter(prefix="/v1", tags=["inference"])
        api.add_api_route("/score", self.score, methods=["POST"])
        api.add_api_route("/models", self.models, methods=["GET"])
        api.add_api_route("/models/status", self.status, methods=["GET"])
        api.add_api_route("/models/metrics", self.quality, methods=["GET"])
        api.add_api_route("/models/promote", self.promote, methods=["POST"])
        api.add_api_route("/models/rollback", self.rollback, methods=["POST"])
        return api

    async def score(self, body: dict[str, Any]) -> dict[str, Any]:
        """Score one transaction (``transaction_created`` payload) now; nothing is written."""
        if self.scorer is None:
            raise HTTPException(503, "this process does not run the scorer")
        try:
            event = TransactionCreated.model_validate(body)
        except ValidationError as exc:
            raise HTTPException(422, exc.errors(include_url=False)) from None
        started = time.perf_counter()
        scored = (await self.scorer.score_batch([TxFact.from_event(event)], remember=False))[0]
        if self.metrics is not None:
            self.metrics.score_seconds.labels(self.metrics.service, "rest").observe(
                time.perf_counter() - started
            )
        return summary(scored)

    async def models(self) -> dict[str, Any]:
        """Every kept version (checkpoint) with its metrics, newest first, and the registry."""
        state = await self.registry.read_registry(self.kinds.champion)
        checkpoints = await self.registry.versions()
        return {
            "kinds": list(self.kinds.all),
            "champion": state.champion,
            "pinned": state.pinned,
            "history": [
                {**c.doc(), "at": c.at.isoformat()} for c in state.history
            ],
            "versions": [cp.summary() for cp in checkpoints],
        }

    async def status(self) -> dict[str, Any]:
        """What serves now (this process's view), and whether it is the cold-start rule."""
        await self.source.refresh()
        serving = self.source.serving
        cp = self.source.checkpoint
        return {
            "cold_start": serving.cold_start,
            "champion": {"model_name": serving.champion.kind, "version": serving.champion.version},
            "challengers": [
                {"model_name": c.kind, "version": c.version} for c in serving.challengers
            ],
            "pinned": self.source.state.pinned,
            "registry_revision": self.source.state.revision,
            "checkpoint": cp.summary() if cp is not None else None,
            # what a checkpoint must have learned before it replaces the cold-start rule
            "serve_after": {
                "labels": self.source.min_labels,
                "frauds": self.source.min_frauds,
            },
        }

    async def quality(
        self,
        day: date | None = None,
        days: Annotated[int, Query(ge=1, le=62)] = 1,
    ) -> dict[str, Any]:
        """Prequential AUC ROC, average precision and card precision@100 per day and model
        (test-then-train scores), for ``days`` days ending on ``day`` (default: yesterday)."""
        end = day or (datetime.now(UTC).date() - timedelta(days=1))
        out: list[dict[str, Any]] = []
        for i in range(days - 1, -1, -1):
            d = end - timedelta(days=i)
            rows = await self.log.prequential_day(d)
            models = {}
            for kind in self.kinds.all:
                m = day_metrics(rows, kind)
                if m is not None:
                    models[kind] = metrics_doc(m)
            out.append({"day": d.isoformat(), "labels": len(rows), "models": models})
        return {"days": out}

    async def promote(self, request: PromoteRequest) -> dict[str, Any]:
        state = await self.registry.read_registry(self.kinds.champion)
        try:
            updated = promote(
                state,
                request.model_name,
                self.kinds.all,
                at=datetime.now(UTC),
                reason=request.reason,
            )
        except LifecycleError as exc:
            raise HTTPException(422, str(exc)) from None
        if not await self.registry.write_registry(updated):
            raise HTTPException(409, "the registry changed meanwhile; read it and try again")
        return await self.status()

    async def rollback(self, request: RollbackRequest) -> dict[str, Any]:
        state = await self.registry.read_registry(self.kinds.champion)
        kept = [cp.seq for cp in await self.registry.versions(limit=10_000)]
        try:
            updated = rollback(
                state, kept, at=datetime.now(UTC), reason=request.reason,
                to_version=request.to_version,
            )
        except LifecycleError as exc:
            raise HTTPException(422, str(exc)) from None
        if updated.champion not in self.kinds.all:
            raise HTTPException(422, f"unknown model kind {updated.champion!r}")
        if not await self.registry.write_registry(updated):
            raise HTTPException(409, "the registry changed meanwhile; read it and try again")
        return await self.status()


def mount(app: FastAPI, api: Api) -> None:
    app.include_router(api.router())
