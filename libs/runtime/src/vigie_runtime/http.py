"""The HTTP side every service has: liveness, readiness (its dependencies), Prometheus metrics.

Liveness says the process serves requests (restart it if not); readiness says its dependencies
answer (take it out of load balancing if not). Services mount their own routes on the app.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from .settings import ServiceSettings

#: a dependency check: returns (or returns True) when healthy; raises or returns False if not
ReadinessCheck = Callable[[], Awaitable[bool | None]]


async def _run_check(check: ReadinessCheck, limit_s: float) -> str | None:
    """``None`` when healthy, else why not (a hung dependency counts as down)."""
    try:
        async with asyncio.timeout(limit_s):
            ok = await check()
    except TimeoutError:
        return f"no answer within {limit_s:g}s"
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None if ok is None or ok else "reported not ready"


def create_app(
    settings: ServiceSettings,
    readiness_checks: Mapping[str, ReadinessCheck] | None = None,
    *,
    registry: CollectorRegistry | None = None,
    check_timeout_s: float = 2.0,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None,
) -> FastAPI:
    """An app with ``/health/live``, ``/health/ready`` and ``/metrics`` (of ``registry``)."""
    checks = dict(readiness_checks or {})
    metrics_registry = registry if registry is not None else CollectorRegistry()

    @asynccontextmanager
    async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.started_at = time.time()
        if lifespan is None:
            yield
            return
        async with lifespan(app):
            yield

    app = FastAPI(title=settings.service_name, lifespan=_lifespan, docs_url=None, redoc_url=None)

    @app.get("/health/live")
    async def live() -> dict[str, str]:
        return {"status": "ok", "service": settings.service_name}

    @app.get("/health/ready")
    async def ready() -> JSONResponse:
        names = list(checks)
        results = await asyncio.gather(*(_run_check(checks[n], check_timeout_s) for n in names))
        failing = {name: why for name, why in zip(names, results, strict=True) if why is not None}
        body = {
            "status": "unavailable" if failing else "ok",
            "checks": {name: failing.get(name, "ok") for name in names},
        }
        return JSONResponse(body, status_code=503 if failing else 200)

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(metrics_registry), media_type=CONTENT_TYPE_LATEST)

    return app
