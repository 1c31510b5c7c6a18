"""The alerting service on the real stack with a real webhook receiver: every rule kind fires
once for its incident (not once per event) and resolves, on the topic, in MongoDB and at the
webhook (signed, each change once); the REST API acknowledges, resolves, labels and reloads."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from vigie_alerting.app import load_rules
from vigie_alerting.rules import RulesError
from vigie_alerting.testing import (
    WEBHOOK_ENV,
    WEBHOOK_KEY,
    Receiver,
    Topics,
    alerting,
    changes_of,
    dead_letter,
    fraud_score,
    make_topics,
    producer,
    read_alerts,
    receiver,
    settings_for,
    throwaway_database,
    wrap,
)
from vigie_contracts import decode
from vigie_contracts.events import DriftSignal, FraudLabel, SecurityEvent, ServiceHeartbeat
from vigie_contracts.events.fraud import Decision, LabelSource, LabelValue
from vigie_contracts.events.logs import SecurityCategory
from vigie_localstack.settings import StackSettings
from vigie_runtime.testing import collect, eventually, topic_factory

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RULES = """
defaults: {{update_interval: 1s, reopen_within: 1s}}
rules:
  - {{name: high-score, kind: event, source: fraud_scores, severity: critical,
     match: {{score: {{gte: 0.9}}}}, group_by: [customer_id], window: 30s, resolve_after: 4s}}
  - {{name: blocked, kind: event, source: fraud_scores, match: {{decision: {{in: [block]}}}},
     group_by: [customer_id], resolve_after: 2s}}
  - {{name: auth-failures, kind: event, source: security_events,
     match: {{category: {{eq: auth_failure}}}}, group_by: [account], min_count: 5, window: 60s,
     resolve_after: 2s, summary: "{{account}}: {{count}} failed logins"}}
  - {{name: drift, kind: event, source: drift_signals, match: {{drift_detected: {{eq: true}}}},
     group_by: [model_name], resolve_after: 1h}}
  - {{name: dead-letters, kind: dead_letters, threshold: 3, window: 3s}}
  - {{name: heartbeat, kind: heartbeat, services: ["svc-*"], timeout: 2s}}
  - {{name: latency, kind: latency, window: 3s, min_samples: 3,
     pipelines: [{{topic: {scores}, sla: 500ms, name: inference}}]}}
{extra}
webhooks:
  - {{name: hook, url: "{url}", secret_env: {env}, backoff_initial: 0.1, backoff_max: 0.5,
     failure_threshold: 3, open_for: 1s}}
"""

STACK = StackSettings()
BOOTSTRAP = f"{STACK.host}:{STACK.kafka_port}"
MONGO = f"mongodb://{STACK.host}:{STACK.mongo_port}"

ONCE = ["high-score", "blocked", "auth-failures", "drift", "dead-letters", "heartbeat", "latency"]


def write_rules(path: Path, scores: str, url: str, extra: str = "") -> None:
    path.write_text(RULES.format(scores=scores, url=url, env=WEBHOOK_ENV, extra=extra))


async def until(check: Callable[[], bool], timeout_s: float = 20) -> None:
    async def holds() -> bool:
        return check()

    await eventually(holds, timeout_s=timeout_s, every_s=0.05)


async def until_async(check: Callable[[], Awaitable[bool]], timeout_s: float = 20) -> None:
    await eventually(check, timeout_s=timeout_s, every_s=0.1)


def fired(r: Receiver, rule: str) -> Callable[[], bool]:
    return lambda: bool(r.of(rule, "fired"))


def resolved_at(r: Receiver, rule: str) -> Callable[[], bool]:
    return lambda: bool(r.of(rule, "resolved"))


def test_a_bad_rules_file_stops_the_service_at_start(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("rules: [{name: x, kind: consumer_lag}]")
    topics = Topics("s", "sec", "d", "hb", ("dlq.x",), "a", "l")
    with pytest.raises(RulesError, match=r"rules\[0\] \(x\)\.threshold"):
        load_rules(
            settings_for("x", topics, path, bootstrap=BOOTSTRAP, mongo_url=MONGO, database="x")
        )
    env = {**os.environ, "VIGIE_ALERTING_RULES_PATH": str(path)}
    done = subprocess.run(  # noqa: S603 - our own entry point
        [sys.executable, "-m", "vigie_alerting"], env=env, capture_output=True, timeout=60
    )
    assert done.returncode == 2
    assert b"rules[0] (x).threshold: Field required" in done.stderr


async def test_every_rule_fires_once_per_incident_and_resolves(
    unique: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(WEBHOOK_ENV, WEBHOOK_KEY.decode())
    database = f"alerting_test_{unique}"
    async with (
        topic_factory(BOOTSTRAP) as factory,
        receiver() as hook,
        throwaway_database(MONGO, database),
        producer(BOOTSTRAP) as send,
    ):
        topics = await make_topics(factory, unique)
        rules_path = tmp_path / "rules.yaml"
        write_rules(rules_path, topics.scores, hook.url)
        settings = settings_for(
            unique, topics, rules_path, bootstrap=BOOTSTRAP, mongo_url=MONGO, database=database
        )
        async with alerting(settings) as service:
            api = service.http
            customer, blocked = f"c-{unique}", f"b-{unique}"
            # latency: records of the inference pipeline 5 s after their event time
            for _ in range(3):
                late = fraud_score(f"l-{unique}", 0.1, late_by=timedelta(seconds=5))
                await send.send(topics.scores, late, key="late")
            # fraud: five high scores of one customer, three blocks of another
            tx = [f"tx-{unique}-{i}" for i in range(5)]
            for t in tx:
                score = fraud_score(customer, 0.95, transaction=t)
                await send.send(topics.scores, score, key=customer)
            for _ in range(3):
                await send.send(
                    topics.scores, fraud_score(blocked, 0.5, decision=Decision.BLOCK), key=blocked
                )
            # security: six failures of one account, two of another (below min_count)
            now = datetime.now(UTC)
            for account, n in ((f"u1-{unique}", 6), (f"u2-{unique}", 2)):
                for _ in range(n):
                    event = SecurityEvent(
                        category=SecurityCategory.AUTH_FAILURE,
                        service="auth",
                        account=account,
                        message="login failed",
                        occurred_at=now,
                    )
                    await send.send(topics.security, wrap(event), key=account)
            drift = DriftSignal(
                model_name=f"m-{unique}",
                model_version="1",
                detector="adwin",
                statistic=0.4,
                threshold=0.1,
                drift_detected=True,
                detected_at=now,
            )
            await send.send(topics.drift, wrap(drift), key=drift.model_name)
            await dead_letter(send, topics.dead_letters[0], f"svc-dlq-{unique}", 3)
            svc = f"svc-{unique}"

            def heartbeat(state: str = "running") -> ServiceHeartbeat:
                return ServiceHeartbeat(
                    service=svc,
                    instance="i-1",
                    version="1",
                    ready=True,
                    sent_at=datetime.now(UTC),
                    details={"state": state},
                )

            await send.send(topics.heartbeats, wrap(heartbeat()), key=svc)

            # the high-score incident: acknowledged and labelled while it fires
            await until(fired(hook, "high-score"))
            alert_id = hook.of("high-score", "fired")[0].body["alert"]["alert_id"]
            ack = await api.post(f"/v1/alerts/{alert_id}/acknowledge", json={"by": "ana"})
            assert ack.status_code == 200 and ack.json()["status"] == "acknowledged"
            labelled = await api.post(
                f"/v1/alerts/{alert_id}/label", json={"label": "fraud", "analyst": "ana"}
            )
            assert labelled.status_code == 200, labelled.text
            assert sorted(labelled.json()["transaction_ids"]) == sorted(tx)

            # the heartbeat incident resolves when the service beats again (then it stops on
            # purpose: no new incident)
            await until(fired(hook, "heartbeat"))
            await send.send(topics.heartbeats, wrap(heartbeat()), key=svc)
            await until(resolved_at(hook, "heartbeat"))
            await send.send(topics.heartbeats, wrap(heartbeat("stopping")), key=svc)
            # the drift incident is resolved by hand
            await until(fired(hook, "drift"))
            drift_id = hook.of("drift", "fired")[0].body["alert"]["alert_id"]
            done = await api.post(f"/v1/alerts/{drift_id}/resolve", json={"by": "bob"})
            assert done.status_code == 200 and done.json()["status"] == "resolved"
            again = await api.post(f"/v1/alerts/{drift_id}/resolve", json={"by": "bob"})
            assert again.status_code == 409
            unknown = await api.post("/v1/alerts/nope/acknowledge", json={"by": "x"})
            assert unknown.status_code == 404

            for rule in ONCE:
                await until(resolved_at(hook, rule), timeout_s=30)
            dlq_alert = hook.of("dead-letters", "fired")[0].body["alert"]["alert_id"]
            not_fraud = await api.post(
                f"/v1/alerts/{dlq_alert}/label", json={"label": "fraud", "analyst": "ana"}
            )
            assert not_fraud.status_code == 409

            # history: what the API lists
            listed = (await api.get("/v1/alerts", params={"rule": "high-score"})).json()
            assert listed["count"] == 1
            doc = listed["alerts"][0]
            assert doc["status"] == "resolved" and doc["count"] == 5
            assert doc["acknowledged_by"] == "ana" and doc["labels"]["customer_id"] == customer
            resolved = (await api.get("/v1/alerts", params={"status": "resolved"})).json()
            assert {a["rule"] for a in resolved["alerts"]} == set(ONCE)

            # the topic: one incident per rule, fired once and resolved once
            published = await read_alerts(BOOTSTRAP, topics.alerts)
            for rule in ONCE:
                changes = changes_of(published, rule)
                fingerprints = {fp for _, fp in changes}
                assert len(fingerprints) == 1, (rule, changes)
                assert [c for c, _ in changes].count("fired") == 1, (rule, changes)
                assert [c for c, _ in changes][-1] == "resolved", (rule, changes)
            assert all(p.key == p.alert.fingerprint.encode() for p in published)
            final = {p.alert.rule: p.alert for p in published if p.change == "resolved"}
            assert final["blocked"].count == 3
            assert final["auth-failures"].count == 6
            assert final["auth-failures"].labels["account"] == f"u1-{unique}"
            assert final["dead-letters"].count == 3
            assert final["high-score"].count == 5

            # the webhook: every change except count updates, signed, each once
            assert hook.deliveries and all(d.signed for d in hook.deliveries)
            assert len(hook.keys()) == len(set(hook.keys()))
            expected = {p.event_id for p in published if p.change != "updated"}
            assert set(hook.keys()) == expected
            assert [d.body["by"] for d in hook.of("drift", "resolved")] == ["bob"]

            # the analyst's verdicts went to fraud.labels
            records = await collect(BOOTSTRAP, topics.labels, 5)
            labels = [decode(r.value).payload for r in records]
            verdicts = [x for x in labels if isinstance(x, FraudLabel)]
            assert len(verdicts) == len(labels) == 5
            assert sorted(x.transaction_id for x in verdicts) == sorted(tx)
            assert {(x.label, x.source, x.analyst) for x in verdicts} == {
                (LabelValue.FRAUD, LabelSource.ANALYST, "ana")
            }

            # rules reload: the file watch picks up a change; a bad file is refused, rules kept
            extra = "  - {name: new-rule, kind: dead_letters, threshold: 100}"
            write_rules(rules_path, topics.scores, hook.url, extra)

            async def has_new_rule() -> bool:
                names = [r["name"] for r in (await api.get("/v1/rules")).json()["rules"]]
                return "new-rule" in names

            await until_async(has_new_rule, timeout_s=10)
            rules_path.write_text("rules: [{name: broken, kind: latency}]")
            refused = await api.post("/v1/rules/reload")
            assert refused.status_code == 422 and "rules[0] (broken).pipelines" in refused.text
            assert await has_new_rule()
    assert WEBHOOK_ENV in os.environ  # the service read its key from the environment

