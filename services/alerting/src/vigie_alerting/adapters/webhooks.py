"""Webhooks through httpx: signed, retried with backoff, behind a circuit breaker per destination.

Each destination delivers its outbox entries over ``concurrency`` lanes; the entries of one
alert always take the same lane, so its changes arrive in order. An entry is retried until
it is delivered (2xx), refused for good (4xx other than 408/425/429) or older than ``max_age``;
only then is it marked done in the outbox, so a restart resends what was in flight.

What a receiver gets (and how it checks it, see ``verify``):

- ``Idempotency-Key``: the alert change's id (``<alert_id>:<revision>``), the same on every
  attempt: a receiver that answered but whose answer was lost sees it again, and drops it;
- ``X-Vigie-Timestamp``: seconds since the epoch when this attempt was signed;
- ``X-Vigie-Signature``: ``sha256=`` + hex HMAC-SHA256 over ``<timestamp>.<body>`` with the
  destination's key (reject a stale timestamp to stop replays);
- ``X-Vigie-Event`` (``alert.fired``, ``alert.updated``, ``alert.acknowledged``,
  ``alert.resolved``) and ``X-Vigie-Delivery-Attempt``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import time
import zlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

import httpx
import orjson
from prometheus_client import Counter

from vigie_runtime import Backoff, get_logger

from ..rules import Webhook
from .history import OutboxEntry, OutboxState

_log = get_logger(__name__)

SIGNATURE = "X-Vigie-Signature"
TIMESTAMP = "X-Vigie-Timestamp"
IDEMPOTENCY_KEY = "Idempotency-Key"
EVENT = "X-Vigie-Event"
ATTEMPT = "X-Vigie-Delivery-Attempt"
#: a status that means "try again later", not "never"
_RETRY_STATUSES = frozenset({408, 425, 429})


def sign(key: bytes, timestamp: int, body: bytes) -> str:
    digest = hmac.new(key, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(
    key: bytes,
    timestamp: str,
    body: bytes,
    signature: str,
    *,
    tolerance_s: float = 300,
    now: float | None = None,
) -> bool:
    """What a receiver runs: the signature matches and the timestamp is recent."""
    try:
        ts = int(timestamp)
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - ts) > tolerance_s:
        return False
    return hmac.compare_digest(sign(key, ts, body), signature)


class Outbox(Protocol):
    """Where a destination reports an entry done (``AlertHistory`` marks it in MongoDB)."""

    def finished(self, entry: OutboxEntry, state: OutboxState, attempts: int) -> None: ...


class BreakerState(Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass
class CircuitBreaker:
    """Opens after ``failure_threshold`` consecutive failures; after ``open_for`` seconds one
    trial goes through (half open): success closes it, failure opens it again."""

    failure_threshold: int
    open_for: float
    state: BreakerState = BreakerState.CLOSED
    failures: int = 0
    opened_at: float = 0.0

    def wait(self, now: float) -> float:
        """Seconds before a request may go (0: now)."""
        if self.state is BreakerState.OPEN:
            remaining = self.opened_at + self.open_for - now
            if remaining > 0:
                return remaining
            self.state = BreakerState.HALF_OPEN
        return 0.0

    def success(self) -> None:
        self.state = BreakerState.CLOSED
        self.failures = 0

    def failure(self, now: float) -> None:
        self.failures += 1
        if self.state is BreakerState.HALF_OPEN or self.failures >= self.failure_threshold:
            self.state = BreakerState.OPEN
            self.opened_at = now


class Outcome(Enum):
    DELIVERED = "delivered"
    REJECTED = "rejected"
    RETRY = "retry"


@dataclass
class Destination:
    """One webhook's delivery worker."""

    hook: Webhook
    key: bytes
    client: httpx.AsyncClient
    history: Outbox
    #: attempts by webhook and outcome (HTTP status or ``error``)
    attempts: Counter | None = None
    clock: Callable[[], float] = time.time
    breaker: CircuitBreaker = field(init=False)
    lanes: list[asyncio.Queue[OutboxEntry]] = field(init=False)
    delivered: int = 0

    def __post_init__(self) -> None:
        self.breaker = CircuitBreaker(self.hook.failure_threshold, self.hook.open_for)
        self.lanes = [asyncio.Queue() for _ in range(self.hook.concurrency)]

    def reconfigure(self, hook: Webhook, key: bytes) -> None:
        self.hook = hook
        self.key = key
        self.breaker.failure_threshold = hook.failure_threshold
        self.breaker.open_for = hook.open_for

    def enqueue(self, entry: OutboxEntry) -> None:
        lane = zlib.crc32(entry.alert_id.encode()) % len(self.lanes)
        self.lanes[lane].put_nowait(entry)

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            for lane in self.lanes:
                group.create_task(self._drain(lane))

    async def _drain(self, lane: asyncio.Queue[OutboxEntry]) -> None:
        while True:
            entry = await lane.get()
            await self.deliver(entry)

    async def deliver(self, entry: OutboxEntry) -> None:
        attempt = 0
        while True:
            now = self.clock()
            if now - entry.created_at > self.hook.max_age:
                _log.error(
                    "webhook gave up: too old", webhook=self.hook.name, alert_event=entry.event_id
                )
                self.history.finished(entry, "expired", attempt)
                return
            wait = self.breaker.wait(now)
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            attempt += 1
            outcome, retry_after = await self._post(entry, attempt)
            if outcome is Outcome.RETRY:
                self.breaker.failure(self.clock())
                backoff = Backoff(initial=self.hook.backoff_initial, cap=self.hook.backoff_max)
                await asyncio.sleep(max(backoff.delay(attempt), retry_after or 0.0))
                continue
            self.breaker.success()  # a 4xx answer still means the receiver is up
            self.history.finished(
                entry, "delivered" if outcome is Outcome.DELIVERED else "rejected", attempt
            )
            if outcome is Outcome.DELIVERED:
                self.delivered += 1
            return

    async def _post(self, entry: OutboxEntry, attempt: int) -> tuple[Outcome, float | None]:
        ts = int(self.clock())
        event = orjson.loads(entry.body).get("change", "fired")
        headers = {
            "Content-Type": "application/json",
            IDEMPOTENCY_KEY: entry.event_id,
            TIMESTAMP: str(ts),
            SIGNATURE: sign(self.key, ts, entry.body),
            EVENT: f"alert.{event}",
            ATTEMPT: str(attempt),
        }
        try:
            response = await self.client.post(
                self.hook.url, content=entry.body, headers=headers, timeout=self.hook.timeout
            )
        except httpx.HTTPError as exc:
            self._count("error")
            _log.info(
                "webhook attempt failed",
                webhook=self.hook.name,
                attempt=attempt,
                error=f"{type(exc).__name__}: {exc}",
            )
            return Outcome.RETRY, None
        status = response.status_code
        self._count(str(status))
        if 200 <= status < 300:
            return Outcome.DELIVERED, None
        if status >= 500 or status in _RETRY_STATUSES:
            return Outcome.RETRY, _retry_after(response)
        _log.error(
            "webhook refused an alert for good",
            webhook=self.hook.name,
            status=status,
            alert_event=entry.event_id,
        )
        return Outcome.REJECTED, None

    def _count(self, outcome: str) -> None:
        if self.attempts is not None:
            self.attempts.labels(self.hook.name, outcome).inc()


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return min(float(value), 300.0) if value is not None else None
    except ValueError:
        return None


class Destinations:
    """The webhook workers, rebuilt in place when the rules file changes."""

    def __init__(
        self, client: httpx.AsyncClient, history: Outbox, attempts: Counter | None = None
    ) -> None:
        self.client = client
        self.history = history
        self.attempts = attempts
        self.by_name: dict[str, Destination] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def configure(self, hooks: list[Webhook], keys: dict[str, bytes]) -> None:
        wanted = {hook.name: hook for hook in hooks}
        for name in list(self.by_name):
            if name not in wanted:
                # its undelivered entries stay pending in the outbox for when it comes back
                self._tasks.pop(name).cancel()
                del self.by_name[name]
        for name, hook in wanted.items():
            known = self.by_name.get(name)
            if known is not None:
                known.reconfigure(hook, keys[name])
                continue
            destination = Destination(hook, keys[name], self.client, self.history, self.attempts)
            self.by_name[name] = destination
            self._tasks[name] = asyncio.create_task(destination.run(), name=f"webhook-{name}")

    def enqueue(self, entry: OutboxEntry) -> bool:
        destination = self.by_name.get(entry.destination)
        if destination is None:
            return False
        destination.enqueue(entry)
        return True

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Destinations]:
        try:
            yield self
        finally:
            tasks = list(self._tasks.values())
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._tasks.clear()
            self.by_name.clear()
