"""Webhooks: signatures, the circuit breaker, and delivery to a real HTTP receiver (retries with
backoff through 5xx and a closed port, a permanent 4xx given up, the idempotency key kept)."""

from __future__ import annotations

import asyncio
import time
import zlib
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request, Response

from vigie_alerting.adapters.history import OutboxEntry
from vigie_alerting.adapters.webhooks import (
    BreakerState,
    CircuitBreaker,
    Destination,
    sign,
    verify,
)
from vigie_alerting.rules import Webhook
from vigie_alerting.testing import Receiver, free_port
from vigie_runtime.testing import eventually

KEY = b"k" * 24


def test_signatures_verify_and_reject_tampering_and_stale_timestamps() -> None:
    body = b'{"alert": 1}'
    signature = sign(KEY, 1_800_000_000, body)
    assert signature.startswith("sha256=") and len(signature) == 7 + 64
    assert verify(KEY, "1800000000", body, signature, now=1_800_000_010)
    assert not verify(KEY, "1800000000", body + b" ", signature, now=1_800_000_010)
    assert not verify(b"other" * 5, "1800000000", body, signature, now=1_800_000_010)
    assert not verify(KEY, "1800000001", body, signature, now=1_800_000_010)
    assert not verify(KEY, "1800000000", body, signature, now=1_800_001_000)  # replayed later
    assert not verify(KEY, "soon", body, signature)


def test_the_breaker_opens_after_consecutive_failures_and_lets_one_trial_through() -> None:
    b = CircuitBreaker(failure_threshold=3, open_for=10)

    def state() -> BreakerState:
        return b.state

    for t in range(2):
        b.failure(t)
    assert state() is BreakerState.CLOSED and b.wait(2) == 0
    b.failure(2)
    assert state() is BreakerState.OPEN and b.wait(5) == 7
    assert b.wait(12) == 0 and state() is BreakerState.HALF_OPEN
    b.failure(12)  # the trial failed: open again at once
    assert state() is BreakerState.OPEN and b.wait(13) == 9
    b.wait(22)
    b.success()
    assert state() is BreakerState.CLOSED and b.failures == 0


@dataclass
class _History:
    """Records what the destination marks done (the MongoDB side has its own test)."""

    done: list[tuple[str, str, int]] = field(default_factory=list)

    def finished(self, entry: OutboxEntry, state: str, attempts: int) -> None:
        self.done.append((entry.event_id, state, attempts))


def entry(event_id: str, created_at: float | None = None) -> OutboxEntry:
    return OutboxEntry(
        "hook", event_id, "a-1", b'{"change": "fired", "n": 1}', created_at or time.time()
    )


def hook(url: str, **options: Any) -> Webhook:
    values: dict[str, Any] = {
        "name": "hook",
        "url": url,
        "secret_env": "K",
        "backoff_initial": 0.05,
        "backoff_max": 0.2,
        "failure_threshold": 3,
        "open_for": 0.3,
        "timeout": 2,
    }
    return Webhook(**{**values, **options})


class _Flaky:
    """A real server answering the given statuses in turn, then 204."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.seen: list[tuple[str, int, bool]] = []
        self.port = free_port()
        app = FastAPI()

        @app.post("/hook")
        async def receive(request: Request) -> Response:
            body = await request.body()
            h = request.headers
            ok = verify(KEY, h["X-Vigie-Timestamp"], body, h["X-Vigie-Signature"])
            self.seen.append((h["Idempotency-Key"], int(h["X-Vigie-Delivery-Attempt"]), ok))
            status = self.statuses.pop(0) if self.statuses else 204
            return Response(status_code=status, headers={"Retry-After": "0"})

        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_config=None, lifespan="off")
        )

    async def __aenter__(self) -> _Flaky:
        self.task = asyncio.create_task(self.server.serve())

        async def started() -> bool:
            return bool(self.server.started)

        await eventually(started, timeout_s=10, every_s=0.01)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.should_exit = True
        await self.task


async def test_retries_through_server_errors_with_the_same_idempotency_key() -> None:
    history = _History()
    async with _Flaky([503, 500, 429]) as server, httpx.AsyncClient() as client:
        url = f"http://127.0.0.1:{server.port}/hook"
        destination = Destination(hook(url, failure_threshold=10), KEY, client, history)
        await asyncio.wait_for(destination.deliver(entry("e-1")), 10)
    assert [(key, attempt) for key, attempt, _ in server.seen] == [
        ("e-1", 1),
        ("e-1", 2),
        ("e-1", 3),
        ("e-1", 4),
    ]
    assert all(ok for _, _, ok in server.seen)  # each attempt signed afresh
    assert history.done == [("e-1", "delivered", 4)]


async def test_a_permanent_refusal_is_given_up_and_the_queue_moves_on() -> None:
    history = _History()
    async with _Flaky([400]) as server, httpx.AsyncClient() as client:
        url = f"http://127.0.0.1:{server.port}/hook"
        destination = Destination(hook(url), KEY, client, history)
        await destination.deliver(entry("bad"))
        await destination.deliver(entry("good"))
    assert history.done == [("bad", "rejected", 1), ("good", "delivered", 1)]


async def test_an_entry_older_than_max_age_is_expired_not_sent() -> None:
    history = _History()
    async with httpx.AsyncClient() as client:
        destination = Destination(
            hook("http://127.0.0.1:9/hook", max_age=60), KEY, client, history
        )
        await destination.deliver(entry("old", created_at=time.time() - 61))
    assert history.done == [("old", "expired", 0)]


async def test_a_closed_port_opens_the_breaker_and_delivery_resumes_when_it_listens() -> None:
    history = _History()
    receiver = Receiver(key=KEY)
    async with httpx.AsyncClient() as client:
        destination = Destination(hook(receiver.url), KEY, client, history)
        task = asyncio.create_task(destination.deliver(entry("late")))

        async def opened() -> bool:
            return destination.breaker.state is BreakerState.OPEN

        await eventually(opened, timeout_s=10, every_s=0.02)
        await receiver.start()
        try:
            await asyncio.wait_for(task, 10)
        finally:
            await receiver.stop()
    assert receiver.keys() == ["late"] and receiver.deliveries[0].signed
    assert history.done[0][:2] == ("late", "delivered")
    assert history.done[0][2] > 3  # failed attempts before the receiver came up
    assert destination.breaker.state is BreakerState.CLOSED


@pytest.mark.parametrize("status", [408, 425])
async def test_timeouts_and_too_early_are_retried(status: int) -> None:
    history = _History()
    async with _Flaky([status]) as server, httpx.AsyncClient() as client:
        url = f"http://127.0.0.1:{server.port}/hook"
        destination = Destination(hook(url), KEY, client, history)
        await destination.deliver(entry("e"))
    assert history.done == [("e", "delivered", 2)]


async def test_lanes_deliver_concurrently_yet_each_alerts_changes_in_order() -> None:
    history = _History()
    async with httpx.AsyncClient() as client:
        receiver = Receiver(key=KEY)
        await receiver.start()
        destination = Destination(hook(receiver.url, concurrency=4), KEY, client, history)
        task = asyncio.create_task(destination.run())
        try:
            for change in ("fired", "acknowledged", "resolved"):
                for n in range(12):
                    body = f'{{"change": "{change}", "n": {n}}}'.encode()
                    destination.enqueue(
                        OutboxEntry("hook", f"a{n}:{change}", f"a{n}", body, time.time())
                    )

            async def all_in() -> bool:
                return len(receiver.deliveries) == 36

            await eventually(all_in, timeout_s=10)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await receiver.stop()
    assert len(destination.lanes) == 4 and all(lane.empty() for lane in destination.lanes)
    assert len({zlib.crc32(f"a{n}".encode()) % 4 for n in range(12)}) > 1  # several lanes used
    for n in range(12):
        got = [d.key.split(":")[1] for d in receiver.deliveries if d.key.startswith(f"a{n}:")]
        assert got == ["fired", "acknowledged", "resolved"], (n, got)
