"""The REST API: ``GET /entities/{kind}/{id}`` (a mirror document) and ``GET /status``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.encoders import jsonable_encoder

from .adapters.mirrors import Mirrors
from .status import Status


def routes(
    mirrors: Mirrors, status: Status, kinds: Sequence[str], extra: Callable[[], dict[str, Any]]
) -> Callable[[FastAPI], None]:
    known = frozenset(kinds)

    def mount(app: FastAPI) -> None:
        @app.get("/entities/{kind}/{entity_id}")
        async def entity(kind: str, entity_id: str) -> Any:
            """The mirror of one OLTP row, PII replaced; ``_version`` is the LSN it reflects."""
            if kind not in known:
                raise HTTPException(404, f"unknown kind {kind!r}; one of {sorted(known)}")
            doc = await mirrors.get(kind, entity_id)
            if doc is None:
                raise HTTPException(404, f"no {kind} {entity_id!r} (never seen, or deleted)")
            return jsonable_encoder(doc)

        @app.get("/status")
        async def service_status() -> dict[str, Any]:
            return {**status.snapshot(), **extra()}

    return mount
