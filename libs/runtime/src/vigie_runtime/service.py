"""``run_service``: the wiring every service's ``main`` shares.

Resources live in an ``AsyncExitStack``; the consumer loops and the HTTP server run in an
``asyncio.TaskGroup``; SIGTERM / SIGINT set an event that starts the ordered shutdown:
stop polling → finish the batches in flight → commit → stop the HTTP server → flush the
producer → close the stores (and everything else on the stack, in reverse order).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable, Generator, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any, TypeVar

import uvicorn
from fastapi import FastAPI
from opentelemetry import trace

from vigie_contracts import Topic

from .errors import Fatal
from .heartbeat import Heartbeat, HeartbeatSettings
from .http import ReadinessCheck, _run_check, create_app
from .logging import configure_logging, get_logger
from .loop import ConsumerLoop, Handler
from .messages import Decoder, envelope_decoder
from .metrics import Metrics
from .producer import Producer
from .settings import ServiceSettings
from .tracing import configure_tracing
from .tracing import tracer as make_tracer

T = TypeVar("T")
_log = get_logger(__name__)


@dataclass
class Runtime:
    """What ``run_service`` gives a service's wiring function."""

    settings: ServiceSettings
    metrics: Metrics
    producer: Producer
    tracer: trace.Tracer
    #: enter stores and clients here: they are closed after the producer is flushed
    stack: AsyncExitStack

    def consumer_loop(
        self,
        *,
        topics: Sequence[Topic | str],
        handler: Handler[T],
        decoder: Decoder[T] = envelope_decoder,  # type: ignore[assignment]  # T=Envelope here
        **options: Any,
    ) -> ConsumerLoop[T]:
        return ConsumerLoop(
            self.settings,
            topics=topics,
            handler=handler,
            decoder=decoder,
            producer=self.producer,
            metrics=self.metrics,
            tracer=self.tracer,
            **options,
        )


@dataclass
class Wiring:
    """What a service runs: its loops, the checks of its dependencies, its own routes."""

    loops: Sequence[ConsumerLoop[Any]] = ()
    readiness: Mapping[str, ReadinessCheck] = field(default_factory=dict)
    #: adds the service's routes (REST APIs, collectors) to the app
    routes: Callable[[FastAPI], None] | None = None


Wire = Callable[[Runtime], Awaitable[Wiring]]


class _Server(uvicorn.Server):
    """uvicorn without its own signal handlers: the service's shutdown order decides when the
    server stops (after the loops drained, so probes and /metrics answer meanwhile)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


async def run_service(
    settings: ServiceSettings,
    wire: Wire,
    *,
    stop: asyncio.Event | None = None,
    serve_http: bool = True,
    heartbeat: HeartbeatSettings | None = None,
) -> None:
    """Run until SIGTERM/SIGINT (or ``stop`` is set); raises ``Fatal`` if a loop hit one.

    While it runs, the instance's heartbeat goes to ``ops.heartbeats`` (``heartbeat``, default:
    ``<PREFIX>HEARTBEAT__*`` of the environment; see ``vigie_runtime.heartbeat``).
    """
    obs = settings.observability
    configure_logging(obs)
    provider = configure_tracing(obs)
    stop = stop or asyncio.Event()
    beat_settings = heartbeat if heartbeat is not None else HeartbeatSettings.of(settings)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with AsyncExitStack() as stack:
            stack.callback(provider.shutdown)  # last: spans of the shutdown itself get exported
            metrics = Metrics(settings.service_name)
            producer = Producer(settings.kafka, metrics=metrics)
            await producer.start()
            stack.push_async_callback(producer.stop)
            runtime = Runtime(settings, metrics, producer, make_tracer(provider), stack)
            wiring = await wire(runtime)
            await _serve(settings, wiring, metrics, stop, serve_http, beat_settings, producer)
            # the loops committed; what the handlers produced must be acked before stores close
            await producer.flush()
            _log.info("service stopped", service=settings.service_name)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


async def _serve(
    settings: ServiceSettings,
    wiring: Wiring,
    metrics: Metrics,
    stop: asyncio.Event,
    serve_http: bool,
    beat_settings: HeartbeatSettings,
    producer: Producer,
) -> None:
    loops = list(wiring.loops)

    async def loops_started() -> bool:
        return all(lp.started.is_set() and not lp.stopping for lp in loops)

    checks: dict[str, ReadinessCheck] = {"consumer_loops": loops_started, **wiring.readiness}

    async def ready() -> bool:
        results = await asyncio.gather(*(_run_check(check, 1.0) for check in checks.values()))
        return all(why is None for why in results)

    heartbeat = Heartbeat(beat_settings, producer, service=settings.service_name, ready=ready)
    server: _Server | None = None
    if serve_http:
        app = create_app(settings, checks, registry=metrics.registry)
        if wiring.routes is not None:
            wiring.routes(app)
        obs = settings.observability
        config = uvicorn.Config(
            app, host=obs.http_host, port=obs.http_port, log_config=None, lifespan="on"
        )
        server = _Server(config)

    async def shutdown(loop_tasks: list[asyncio.Task[None]]) -> None:
        await stop.wait()
        _log.info("stopping: finishing the batches in flight")
        for lp in loops:
            lp.stop()
        await asyncio.gather(*loop_tasks, return_exceptions=True)
        if server is not None:
            server.should_exit = True

    try:
        async with heartbeat.running(), asyncio.TaskGroup() as group:
            tasks = [group.create_task(lp.run()) for lp in loops]
            if server is not None:
                group.create_task(server.serve())
            group.create_task(shutdown(tasks))
            _log.info("service started", service=settings.service_name, loops=len(loops))
    except* Fatal as failures:
        first = failures.exceptions[0]
        _log.error("service stopping on a fatal error", error=str(first))
        raise first from None


def run(settings: ServiceSettings, wire: Wire) -> int:
    """``main()`` of a service: run it and return the process exit status."""
    try:
        asyncio.run(run_service(settings, wire))
    except Fatal:
        return 1
    return 0
