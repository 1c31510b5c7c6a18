"""Wiring only: scores, security events, drift, heartbeats, pipeline outputs and dead letters
→ the rule engine → the ``alerts`` topic, MongoDB and webhooks; consumer lag read from Kafka;
the REST API.

The rules are reloaded without a restart when the file changes (checked every
``rules_watch_interval_s``, which follows a Kubernetes ConfigMap update) or on
``POST /v1/rules/reload``. Run one instance: incidents are judged in memory (restored from
MongoDB at start), so two instances would raise each pipeline alert twice.
"""

from __future__ import annotations

from typing import Any

import httpx
from prometheus_client import Counter

from vigie_runtime import Runtime, Wiring, raw_decoder
from vigie_stores.mongo import MongoStore

from . import api, rules
from .adapters.history import AlertHistory
from .adapters.lag import LagReader
from .adapters.webhooks import Destinations
from .alerter import Alerter, every
from .settings import AlertingSettings


def load_rules(settings: AlertingSettings) -> rules.RuleSet:
    """The rules at start: a bad file stops the service with every problem listed."""
    return rules.load(settings.rules_path)


async def wire(runtime: Runtime) -> Wiring:
    settings = runtime.settings
    assert isinstance(settings, AlertingSettings)  # noqa: S101 - run_service passes ours back
    ruleset = load_rules(settings)
    registry = runtime.metrics.registry
    changes = Counter(
        "vigie_alerting_changes", "Alert changes published.", ["rule", "change"], registry=registry
    )
    attempts = Counter(
        "vigie_alerting_webhook_attempts",
        "Webhook attempts by outcome (HTTP status or error).",
        ["webhook", "outcome"],
        registry=registry,
    )
    stack = runtime.stack
    store = await stack.enter_async_context(await MongoStore.open(settings.mongo))
    history = AlertHistory(store, flush_interval_s=settings.outbox_flush_interval_s)
    await stack.enter_async_context(history.flushing())
    client = await stack.enter_async_context(httpx.AsyncClient())
    destinations = await stack.enter_async_context(
        Destinations(client, history, attempts).running()
    )
    alerter = Alerter(
        settings,
        ruleset,
        history=history,
        destinations=destinations,
        producer=runtime.producer,
        changes_counter=changes,
    )
    alerter.check(ruleset)
    await alerter.start()
    alerter.remember_rules_file()
    lag_reader = await stack.enter_async_context(LagReader(settings.kafka))
    await stack.enter_async_context(every(settings.tick_interval_s, alerter.tick, "alert tick"))
    await stack.enter_async_context(
        every(settings.lag_interval_s, lambda: alerter.read_lag(lag_reader), "lag reading")
    )
    if settings.rules_watch_interval_s > 0:
        await stack.enter_async_context(
            every(settings.rules_watch_interval_s, alerter.reload_if_changed, "rules watch")
        )

    start: dict[str, Any] = {"auto_offset_reset": settings.start_offset}
    events = runtime.consumer_loop(
        topics=sorted(
            {
                settings.scores_topic,
                settings.security_topic,
                settings.drift_topic,
                settings.heartbeats_topic,
                *settings.latency_topics,
            }
        ),
        handler=alerter.on_events,
        **start,
    )
    loops: list[Any] = [events]
    if settings.dead_letter_topics:
        loops.append(
            runtime.consumer_loop(
                topics=list(settings.dead_letter_topics),
                handler=alerter.on_dead_letters,
                decoder=raw_decoder,
                # its own group: dead letters are raw bytes, the other topics envelopes
                group_id=f"{settings.group_id}-dead-letters",
                **start,
            )
        )

    async def mongo_ready() -> bool:
        await store.ping()
        return True

    def routes(app: Any) -> None:
        api.mount(app, alerter, max_limit=settings.api_max_limit)

    return Wiring(loops=loops, readiness={"mongo": mongo_ready}, routes=routes)
