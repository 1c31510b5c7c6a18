"""The alerting service's core: feeds the engine, routes what it decides, reloads the rules.

Every change of an alert goes, in one step, to MongoDB (the history and, for each webhook that
wants it, an outbox entry) and to the ``alerts`` topic (keyed by fingerprint); once both are
acknowledged the outbox entries are handed to the webhook workers, and only then may the
consumer loop commit the input. A step that fails is kept and retried first by the next one.
The engine is called under one lock, so the topic and the history see each alert's changes in
order.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from opentelemetry.context import Context
from prometheus_client import Counter

from vigie_contracts import Envelope, Event
from vigie_contracts.events import FraudLabel
from vigie_contracts.events.alerts import AlertCategory
from vigie_contracts.events.fraud import LabelSource, LabelValue
from vigie_runtime import Message, Producer, Retryable, get_logger
from vigie_runtime import headers as h
from vigie_stores import StoreError

from . import rules
from .adapters.history import AlertHistory, OutboxEntry
from .adapters.lag import LagReader
from .adapters.webhooks import Destinations
from .handlers import AlertChange, Change, DeadLetterSeen, Engine, Observed
from .settings import AlertingSettings

_log = get_logger(__name__)

CHANGE_HEADER = "vigie.alert.change"


class AlertNotFound(LookupError):
    pass


class NotAFraudAlert(ValueError):
    pass


def _dt(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def wants(hook: rules.Webhook, change: AlertChange) -> bool:
    incident = change.incident
    match = hook.match
    if change.change is Change.UPDATED and not hook.send_updates:
        return False
    if match.categories and incident.category not in match.categories:
        return False
    if match.rules and incident.rule not in match.rules:
        return False
    return rules.SEVERITY_ORDER[incident.severity] >= rules.SEVERITY_ORDER[match.min_severity]


def webhook_body(change: AlertChange) -> bytes:
    incident = change.incident
    return orjson.dumps(
        {
            "event_id": change.event_id,
            "change": change.change.value,
            "at": _dt(change.at).isoformat(),
            "by": change.by,
            "alert": incident.alert().model_dump(mode="json"),
            "revision": incident.revision,
            "transaction_ids": incident.transaction_ids,
        }
    )


def webhook_keys(ruleset: rules.RuleSet) -> dict[str, bytes]:
    return {w.name: os.environ.get(w.secret_env, "").encode() for w in ruleset.webhooks}


class Alerter:
    def __init__(
        self,
        settings: AlertingSettings,
        ruleset: rules.RuleSet,
        *,
        history: AlertHistory,
        destinations: Destinations,
        producer: Producer,
        changes_counter: Counter | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.ruleset = ruleset
        self.history = history
        self.destinations = destinations
        self.producer = producer
        self.clock = clock
        self._changes = changes_counter
        self.engine = Engine(
            ruleset,
            sources={
                settings.scores_topic: "fraud_scores",
                settings.security_topic: "security_events",
                settings.drift_topic: "drift_signals",
            },
            heartbeat_topic=settings.heartbeats_topic,
            now=clock(),
        )
        self._lock = asyncio.Lock()
        self._pending: list[tuple[AlertChange, Context | None]] = []
        self._rules_digest = ""

    # -- start ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Carry on from the history: open incidents, and the outbox not yet delivered."""
        await self.history.ensure_indexes()
        self.engine.restore(await self.history.open_incidents(), self.clock())
        self.destinations.configure(self.ruleset.webhooks, webhook_keys(self.ruleset))
        pending = await self.history.pending()
        for entry in pending:
            self.destinations.enqueue(entry)
        _log.info("alerting started", rules=len(self.ruleset.active), outbox_pending=len(pending))

    # -- inputs (the consumer loops' handlers) ----------------------------------------------------

    async def on_events(self, messages: Sequence[Message[Envelope[Event]]]) -> None:
        async with self._lock:
            now = self.clock()
            routed: list[tuple[AlertChange, Context | None]] = []
            for message in messages:
                envelope = message.value
                observed = Observed(
                    topic=message.topic,
                    event_id=envelope.event_id,
                    payload=envelope.payload,
                    event_time=envelope.event_time.timestamp(),
                    record_time=message.timestamp / 1000,
                )
                # one at a time: each alert continues the trace of the event that raised it
                routed += [(c, message.context) for c in self.engine.on_events([observed], now)]
            await self._route_or_retry(routed)

    async def on_dead_letters(self, messages: Sequence[Message[bytes | None]]) -> None:
        letters = [
            DeadLetterSeen(
                service=h.header(m.headers, h.DLQ_SERVICE) or m.topic.removeprefix("dlq."),
                error_type=h.header(m.headers, h.DLQ_ERROR_TYPE) or "unknown",
                record_time=m.timestamp / 1000,
            )
            for m in messages
        ]
        async with self._lock:
            changes = self.engine.on_dead_letters(letters, self.clock())
            await self._route_or_retry([(c, None) for c in changes])

    async def _route_or_retry(self, routed: list[tuple[AlertChange, Context | None]]) -> None:
        try:
            await self._route(routed)
        except StoreError as exc:
            if exc.retryable:
                raise Retryable(str(exc)) from exc
            raise

    # -- time-driven work -----------------------------------------------------------------------

    async def tick(self) -> None:
        async with self._lock:
            changes = self.engine.tick(self.clock())
            await self._route([(c, None) for c in changes])

    async def read_lag(self, reader: LagReader) -> None:
        lag_rules = self.engine.rules_of(rules.ConsumerLagRule)
        if not lag_rules:
            return
        readings = await reader.read(lambda g: any(rule.watches(g) for rule in lag_rules))
        async with self._lock:
            changes = self.engine.on_lag(readings, self.clock())
            await self._route([(c, None) for c in changes])

    # -- operators ------------------------------------------------------------------------------

    async def acknowledge(self, alert_id: str, by: str) -> AlertChange:
        return await self._operate(self.engine.acknowledge, alert_id, by)

    async def resolve(self, alert_id: str, by: str) -> AlertChange:
        return await self._operate(self.engine.resolve, alert_id, by)

    async def _operate(
        self, action: Callable[[str, str, float], AlertChange | None], alert_id: str, by: str
    ) -> AlertChange:
        async with self._lock:
            change = action(alert_id, by, self.clock())
            if change is None:
                raise AlertNotFound(alert_id)
            await self._route([(change, None)])
        return change

    async def label(
        self, alert_id: str, label: LabelValue, analyst: str, transaction_ids: Sequence[str] = ()
    ) -> list[str]:
        """Publish an analyst's verdict on the alert's transactions to the labels topic."""
        doc = await self.history.get(alert_id)
        if doc is None:
            raise AlertNotFound(alert_id)
        if doc["category"] != AlertCategory.FRAUD.value:
            raise NotAFraudAlert(f"alert {alert_id} is a {doc['category']} alert")
        known = list(doc.get("transaction_ids") or [])
        ids = list(transaction_ids) or known
        if not ids:
            raise NotAFraudAlert(f"alert {alert_id} names no transaction to label")
        now = datetime.now(UTC)
        customer = (doc.get("labels") or {}).get("customer_id")
        sends = []
        for tid in ids:
            payload = FraudLabel(
                transaction_id=tid,
                customer_id=customer,
                label=label,
                source=LabelSource.ANALYST,
                labelled_at=now,
                analyst=analyst,
            )
            envelope = Envelope.wrap(
                payload,
                producer=self.settings.service_name,
                event_time=now,
                # the same verdict sent twice is one label
                event_id=f"analyst:{alert_id}:{tid}:{label.value}",
            )
            sends.append(self.producer.send(self.settings.labels_topic, envelope, key=tid))
        await asyncio.gather(*sends)
        return ids

    # -- rules ----------------------------------------------------------------------------------

    def check(self, ruleset: rules.RuleSet) -> None:
        """What only the service can check: the topics it reads."""
        missing = ruleset.latency_topics() - set(self.settings.latency_topics)
        if missing:
            raise rules.RulesError(
                f"latency rules name topics not read by this service: {sorted(missing)} "
                f"(add them to VIGIE_ALERTING_LATENCY_TOPICS; read: "
                f"{list(self.settings.latency_topics)})"
            )

    async def reload(self) -> rules.RuleSet:
        """Read the rules file again; a bad file raises ``RulesError`` and changes nothing."""
        path: Path = self.settings.rules_path
        ruleset = rules.load(path)
        self.check(ruleset)
        async with self._lock:
            self.ruleset = ruleset
            changes = self.engine.reload(ruleset, self.clock())
            self.destinations.configure(ruleset.webhooks, webhook_keys(ruleset))
            await self._route([(c, None) for c in changes])
        self._rules_digest = _digest(path)
        _log.info("rules reloaded", path=str(path), rules=len(ruleset.active))
        return ruleset

    async def reload_if_changed(self) -> bool:
        digest = _digest(self.settings.rules_path)
        if not digest or digest == self._rules_digest:
            return False
        try:
            await self.reload()
        except rules.RulesError as exc:
            self._rules_digest = digest  # do not log the same bad file every interval
            _log.error("rules file changed but is invalid; kept the rules", error=str(exc))
            return False
        return True

    def remember_rules_file(self) -> None:
        self._rules_digest = _digest(self.settings.rules_path)

    # -- routing --------------------------------------------------------------------------------

    async def _route(self, routed: list[tuple[AlertChange, Context | None]]) -> None:
        batch = self._pending + routed
        if not batch:
            return
        now = self.clock()
        flagged = [(change, self.engine.silenced(change, now)) for change, _ in batch]
        entries = [
            OutboxEntry(hook.name, change.event_id, change.incident.alert_id, body, now)
            for change, silenced in flagged
            if not silenced
            for hook in self.ruleset.webhooks
            if wants(hook, change)
            for body in (webhook_body(change),)
        ]
        sends = [
            self.producer.send(
                self.settings.alerts_topic,
                Envelope.wrap(
                    change.incident.alert(),
                    producer=self.settings.service_name,
                    event_time=_dt(change.at),
                    event_id=change.event_id,
                ),
                key=change.incident.fingerprint,
                headers=[(CHANGE_HEADER, change.change.value.encode())],
                context=context,
            )
            for change, context in batch
        ]
        try:
            await asyncio.gather(self.history.save(flagged, entries), *sends)
        except BaseException:
            # sent again with the next step: the history's versions and the topic's event ids
            # make the repeat harmless
            self._pending = batch
            raise
        self._pending = []
        for entry in entries:
            self.destinations.enqueue(entry)
        if self._changes is not None:
            for change, _ in batch:
                self._changes.labels(change.incident.rule, change.change.value).inc()


def _digest(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return ""


@contextlib.asynccontextmanager
async def every(
    seconds: float, work: Callable[[], Awaitable[Any]], name: str
) -> AsyncIterator[None]:
    """Run ``work`` every ``seconds`` in the background; a failure is logged, not fatal."""

    async def loop() -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await work()
            except Exception as exc:
                _log.error(f"{name} failed", error=str(exc), error_type=type(exc).__name__)

    task = asyncio.create_task(loop(), name=name)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
