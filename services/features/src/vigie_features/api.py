"""The REST API: features of one entity or of many (one Redis round trip), and the registry.

Reads Redis only (``feat:{entity_type}:{entity_id}`` hashes written by the worker). Each value
comes with its age (now − the entity's last event time) and a status: present, stale (older
than the feature's freshness limit) or missing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field

from vigie_featureset import FEATURES, entity_key
from vigie_stores import StoreError
from vigie_stores.redis import RedisStore

from .handlers import LookupError_, describe, parse_entity_type, registry_entry, select

Clock = Callable[[], datetime]

_ID = Field(min_length=1, max_length=256)


class EntityRef(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    entity_type: str
    entity_id: Annotated[str, _ID]
    #: only these features (default: all of the entity's)
    features: list[str] | None = None


class LookupRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    entities: list[EntityRef] = Field(min_length=1)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def router(store: RedisStore, *, max_entities: int, clock: Clock = _utc_now) -> APIRouter:
    api = APIRouter(prefix="/v1/features", tags=["features"])

    async def read(keys: list[str]) -> dict[str, dict[str, str]]:
        try:
            return await store.read_hashes(keys)
        except StoreError as exc:
            raise HTTPException(503, f"online store unavailable: {exc}") from exc

    @api.get("/registry")
    async def registry(entity: str | None = None) -> dict[str, Any]:
        """Every feature: name, entity, view, window, label delay, type, description, freshness."""
        defs = FEATURES
        if entity is not None:
            try:
                kind = parse_entity_type(entity)
            except LookupError_ as exc:
                raise HTTPException(422, str(exc)) from None
            defs = tuple(d for d in FEATURES if d.entity == kind)
        return {"count": len(defs), "features": [registry_entry(d) for d in defs]}

    @api.get("/{entity_type}/{entity_id}")
    async def one(
        entity_type: str,
        entity_id: Annotated[str, _ID],
        feature: Annotated[list[str] | None, Query()] = None,
    ) -> dict[str, Any]:
        """The stored features of one entity (404 when the store has none)."""
        try:
            kind = parse_entity_type(entity_type)
            defs = select(kind, feature)
        except LookupError_ as exc:
            raise HTTPException(422, str(exc)) from None
        key = entity_key(kind, entity_id)
        found = await read([key])
        if key not in found:
            raise HTTPException(404, f"no features stored for {kind.value} {entity_id!r}")
        return describe(kind, entity_id, found[key], defs, clock())

    @api.post("/lookup")
    async def lookup(request: LookupRequest) -> dict[str, Any]:
        """Features of many entities in one Redis round trip; unknown entities come back with
        ``found: false`` and every value missing."""
        if len(request.entities) > max_entities:
            raise HTTPException(
                422, f"{len(request.entities)} entities asked, at most {max_entities} per call"
            )
        plans = []
        for i, ref in enumerate(request.entities):
            try:
                kind = parse_entity_type(ref.entity_type)
                defs = select(kind, ref.features)
            except LookupError_ as exc:
                raise HTTPException(422, f"entities[{i}]: {exc}") from None
            plans.append((kind, ref.entity_id, defs, entity_key(kind, ref.entity_id)))
        found = await read(list(dict.fromkeys(p[3] for p in plans)))
        now = clock()
        results = [describe(kind, eid, found.get(key), defs, now) for kind, eid, defs, key in plans]
        return {"count": len(results), "results": results}

    return api


def mount(app: FastAPI, store: RedisStore, *, max_entities: int, clock: Clock = _utc_now) -> None:
    app.include_router(router(store, max_entities=max_entities, clock=clock))
