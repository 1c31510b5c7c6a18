"""The pure engine: each rule kind fires once per incident, counts, resolves; lag is judged over
a window; dedup, reopening, acknowledgement, silences and reloads. Plain values, a fake clock."""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import count
from typing import Any

import pytest

from vigie_alerting import rules
from vigie_alerting.handlers import (
    Change,
    DeadLetterSeen,
    Engine,
    GroupOffsets,
    LagPoint,
    Observed,
    judge_lag,
    quantile,
)
from vigie_contracts.events import DriftSignal, FraudScore, SecurityEvent, ServiceHeartbeat
from vigie_contracts.events.alerts import AlertStatus
from vigie_contracts.events.fraud import Decision
from vigie_contracts.events.logs import SecurityCategory

T0 = 1_800_000_000.0
_ids = count()


def engine(text: str, now: float = T0) -> Engine:
    return Engine(
        rules.parse(text),
        sources={"s": "fraud_scores", "sec": "security_events", "drift": "drift_signals"},
        heartbeat_topic="hb",
        now=now,
    )


def score(customer: str, value: float, t: float, decision: Decision = Decision.APPROVE) -> Observed:
    payload = FraudScore(
        transaction_id=f"tx-{next(_ids)}",
        customer_id=customer,
        score=value,
        decision=decision,
        model_name="m",
        model_version="1",
        scored_at=datetime.fromtimestamp(t, UTC),
    )
    return Observed("s", f"e-{next(_ids)}", payload, t, t)


def auth_failure(account: str, t: float) -> Observed:
    payload = SecurityEvent(
        category=SecurityCategory.AUTH_FAILURE,
        service="auth",
        account=account,
        message="login failed",
        occurred_at=datetime.fromtimestamp(t, UTC),
    )
    return Observed("sec", f"e-{next(_ids)}", payload, t, t)


def beat(service: str, t: float, state: str = "running", instance: str = "i-1") -> Observed:
    payload = ServiceHeartbeat(
        service=service,
        instance=instance,
        version="1",
        ready=True,
        sent_at=datetime.fromtimestamp(t, UTC),
        details={"state": state},
    )
    return Observed("hb", f"e-{next(_ids)}", payload, t, t)


def kinds(changes: list[Any]) -> list[tuple[str, Change]]:
    return [(c.incident.rule, c.change) for c in changes]


HIGH = """
defaults: {update_interval: 10, reopen_within: 30}
rules:
  - {name: high, kind: event, source: fraud_scores, match: {score: {gte: 0.9}},
     group_by: [customer_id], window: 60, resolve_after: 20}
"""


def test_an_event_rule_fires_once_per_incident_counts_and_resolves_when_quiet() -> None:
    e = engine(HIGH)
    first = e.on_events([score("c1", 0.95, T0)], T0)
    assert kinds(first) == [("high", Change.FIRED)]
    alert = first[0].incident.alert()
    assert alert.count == 1 and alert.labels["customer_id"] == "c1"
    assert alert.labels["transaction_id"].startswith("tx-")
    # more of the same incident: counted, not raised again; low scores do not count
    more = e.on_events([score("c1", 0.97, T0 + 1), score("c1", 0.2, T0 + 2)], T0 + 2)
    more += e.on_events([score("c1", 0.99, T0 + 3)], T0 + 3)
    assert more == []
    # another customer is another incident
    assert kinds(e.on_events([score("c2", 0.91, T0 + 4)], T0 + 4)) == [("high", Change.FIRED)]
    # the count goes out at the update interval, once
    updates = e.tick(T0 + 10)
    assert kinds(updates) == [("high", Change.UPDATED)]
    assert updates[0].incident.count == 3 and updates[0].incident.revision == 2
    assert e.tick(T0 + 11) == []
    # quiet for resolve_after: resolved, one change each
    resolved = e.tick(T0 + 24)
    assert [(c.incident.labels["customer_id"], c.change) for c in resolved] == [
        ("c1", Change.RESOLVED),
        ("c2", Change.RESOLVED),
    ]
    assert all(c.incident.status is AlertStatus.RESOLVED for c in resolved)
    assert e.tick(T0 + 40) == []


def test_a_resolved_incident_firing_again_soon_is_reopened_not_new() -> None:
    e = engine(HIGH)
    fired = e.on_events([score("c1", 0.95, T0)], T0)[0]
    e.tick(T0 + 21)
    again = e.on_events([score("c1", 0.95, T0 + 25)], T0 + 25)
    assert kinds(again) == [("high", Change.FIRED)]
    assert again[0].incident.alert_id == fired.incident.alert_id
    assert again[0].incident.count == 2
    e.tick(T0 + 50)
    later = e.on_events([score("c1", 0.95, T0 + 100)], T0 + 100)
    assert later[0].incident.alert_id != fired.incident.alert_id  # past reopen_within


def test_redelivered_events_are_not_counted_twice() -> None:
    e = engine(HIGH)
    event = score("c1", 0.95, T0)
    assert len(e.on_events([event], T0)) == 1
    assert e.on_events([event, event], T0 + 1) == []
    assert e.tick(T0 + 10) == []  # nothing new to count


BURST = """
rules:
  - {name: burst, kind: event, source: fraud_scores, match: {score: {gte: 0.8}},
     group_by: [customer_id], min_count: 3, window: 10}
  - {name: blocked, kind: event, source: fraud_scores,
     match: {decision: {in: [block, review]}}, resolve_after: 5}
  - {name: auth, kind: event, source: security_events, match: {category: {eq: auth_failure}},
     group_by: [account], min_count: 3, window: 60,
     summary: "{account}: {count} failed logins"}
"""


def test_bursts_fire_at_min_count_within_the_window_only() -> None:
    e = engine(BURST)
    # three high scores 15 s apart never make 3 in 10 s
    for i in range(3):
        assert e.on_events([score("c1", 0.9, T0 + 15 * i)], T0 + 15 * i) == []
    got = []
    for i in range(3):
        got += e.on_events([score("c2", 0.9, T0 + i)], T0 + i)
    assert kinds(got) == [("burst", Change.FIRED)]
    assert got[0].incident.count == 3


def test_decisions_and_security_failures() -> None:
    e = engine(BURST)
    fired = e.on_events([score("c1", 0.1, T0, Decision.BLOCK)], T0)
    assert kinds(fired) == [("blocked", Change.FIRED)]
    assert fired[0].incident.labels["decision"] == "block"
    assert e.on_events([score("c1", 0.1, T0, Decision.APPROVE)], T0) == []
    auth: list[Any] = []
    for i in range(5):
        auth += e.on_events([auth_failure("u-1", T0 + i)], T0 + i)
    assert kinds(auth) == [("auth", Change.FIRED)]
    assert auth[0].incident.summary == "u-1: 3 failed logins"


def test_drift_signals_raise_model_alerts() -> None:
    e = engine(
        "rules: [{name: drift, kind: event, source: drift_signals, "
        "match: {drift_detected: {eq: true}}, group_by: [model_name, detector]}]"
    )
    signal = DriftSignal(
        model_name="m",
        model_version="1",
        detector="adwin",
        statistic=0.3,
        threshold=0.1,
        drift_detected=True,
        detected_at=datetime.fromtimestamp(T0, UTC),
    )
    changes = e.on_events([Observed("drift", "d1", signal, T0, T0)], T0)
    assert kinds(changes) == [("drift", Change.FIRED)]
    assert changes[0].incident.category.value == "model"


def test_acknowledge_then_resolve_by_hand() -> None:
    e = engine(HIGH)
    alert_id = e.on_events([score("c1", 0.95, T0)], T0)[0].incident.alert_id
    ack = e.acknowledge(alert_id, "ana", T0 + 1)
    assert ack is not None and ack.incident.status is AlertStatus.ACKNOWLEDGED
    assert ack.incident.acknowledged_by == "ana"
    done = e.resolve(alert_id, "ana", T0 + 2)
    assert done is not None and done.incident.status is AlertStatus.RESOLVED
    assert e.resolve(alert_id, "ana", T0 + 3) is None and e.acknowledge("nope", "x", T0) is None
    # evidence after a manual resolve is a new incident
    new = e.on_events([score("c1", 0.95, T0 + 4)], T0 + 4)
    assert new[0].incident.alert_id != alert_id


def test_a_rule_removed_by_a_reload_resolves_its_incidents() -> None:
    e = engine(HIGH)
    e.on_events([score("c1", 0.95, T0)], T0)
    changes = e.reload(rules.parse("rules: []"), T0 + 1)
    assert kinds(changes) == [("high", Change.RESOLVED)]
    assert e.on_events([score("c1", 0.99, T0 + 2)], T0 + 2) == []


def test_silences_cover_matching_alerts_until_they_end() -> None:
    e = engine(
        HIGH + "silences: [{rule: high, labels: {customer_id: c1}, ends_at: %f}]" % (T0 + 100)
    )
    c1 = e.on_events([score("c1", 0.95, T0)], T0)[0]
    c2 = e.on_events([score("c2", 0.95, T0)], T0)[0]
    assert e.silenced(c1, T0) and not e.silenced(c2, T0) and not e.silenced(c1, T0 + 100)


# -- consumer lag --------------------------------------------------------------------------------

LAG = rules.ConsumerLagRule(
    name="lag", kind="consumer_lag", threshold=100, window=30, min_samples=3
)


def points(*readings: tuple[float, int, int]) -> list[LagPoint]:
    return [LagPoint(T0 + t, lag, {("t", 0): committed}) for t, lag, committed in readings]


@pytest.mark.parametrize(
    ("readings", "active", "why"),
    [
        ([(0, 500, 10), (5, 600, 10), (10, 700, 10)], True, "stalled"),
        ([(0, 500, 10), (5, 500, 10), (10, 500, 10)], True, "stalled"),
        ([(0, 500, 10), (5, 600, 20), (10, 700, 30)], True, "falling behind"),
        ([(0, 700, 10), (5, 600, 200), (10, 500, 400)], False, "consuming"),
        ([(0, 500, 10), (5, 50, 10), (10, 700, 10)], False, "below threshold"),
    ],
)
def test_lag_is_judged_over_the_window_not_one_sample(
    readings: list[tuple[float, int, int]], active: bool, why: str
) -> None:
    verdict = judge_lag(points(*readings), LAG, T0 + 10)
    assert verdict is not None and verdict.active is active and why in verdict.why


def test_lag_needs_enough_recent_readings() -> None:
    assert judge_lag(points((0, 500, 10), (5, 600, 10)), LAG, T0 + 5) is None
    # readings older than the window do not count
    assert judge_lag(points((0, 500, 10), (1, 500, 10), (40, 500, 10)), LAG, T0 + 40) is None


def test_a_stalled_group_fires_once_then_resolves_when_it_catches_up() -> None:
    e = engine(
        "rules: [{name: lag, kind: consumer_lag, groups: ['g-*'], threshold: 100, window: 30, "
        "min_samples: 3}]"
    )

    def reading(group: str, committed: int, end: int) -> GroupOffsets:
        return GroupOffsets(group, {("t", 0): committed}, {("t", 0): end})

    changes = []
    for i in range(5):
        changes += e.on_lag([reading("g-1", 10, 500 + i), reading("other", 0, 9999)], T0 + i)
    assert kinds(changes) == [("lag", Change.FIRED)]  # at the third reading, once
    labels = changes[0].incident.labels
    assert labels["group"] == "g-1" and labels["lag"] == "492" and "stalled" in labels["why"]
    resolved = []
    for i in range(5, 8):
        resolved += e.on_lag([reading("g-1", 400 + 50 * i, 504)], T0 + i)
    assert kinds(resolved) == [("lag", Change.RESOLVED)]


# -- latency, dead letters, heartbeats ----------------------------------------------------------


def test_quantile_is_nearest_rank() -> None:
    assert quantile(range(1, 101), 0.99) == 99
    assert quantile([5.0], 0.99) == 5.0
    with pytest.raises(ValueError):
        quantile([], 0.5)


LATENCY = """
rules:
  - {name: latency, kind: latency, window: 10, min_samples: 10,
     pipelines: [{topic: s, sla: 100ms, name: inference}]}
"""


def test_latency_p99_above_the_sla_fires_and_resolves() -> None:
    e = engine(LATENCY)
    for i in range(20):
        slow = score("c", 0.1, T0)
        e.on_events([Observed("s", f"x{i}", slow.payload, T0, T0 + (0.5 if i == 19 else 0.01))], T0)
    fired = e.tick(T0 + 1)
    assert kinds(fired) == [("latency", Change.FIRED)]
    assert fired[0].incident.labels["latency_s"] == "0.500"
    for i in range(100):
        e.on_events([Observed("s", f"y{i}", score("c", 0.1, T0).payload, T0, T0 + 0.01)], T0 + 12)
    assert kinds(e.tick(T0 + 12)) == [("latency", Change.RESOLVED)]


def test_dead_letters_above_the_threshold_fire_at_once_and_resolve_when_the_window_slides() -> None:
    e = engine("rules: [{name: dlq, kind: dead_letters, threshold: 3, window: 10}]")
    letters = [DeadLetterSeen("logs", "ValueError", T0 + i * 0.1) for i in range(2)]
    assert e.on_dead_letters(letters, T0 + 0.2) == []
    fired = e.on_dead_letters([DeadLetterSeen("logs", "ValueError", T0 + 0.3)], T0 + 0.3)
    assert kinds(fired) == [("dlq", Change.FIRED)]
    assert fired[0].incident.labels["service"] == "logs" and fired[0].incident.count == 3
    assert e.on_dead_letters([DeadLetterSeen("logs", "ValueError", T0 + 1)], T0 + 1) == []
    assert kinds(e.tick(T0 + 11)) == [("dlq", Change.RESOLVED)]


HEARTBEAT = "rules: [{name: hb, kind: heartbeat, timeout: 10, expected: [inference]}]"


def test_a_silent_service_is_missed_and_found_again() -> None:
    e = engine(HEARTBEAT)
    e.on_events([beat("logs", T0)], T0)
    assert e.tick(T0 + 5) == []
    missed = e.tick(T0 + 11)
    # logs went quiet; inference was expected and never seen
    assert sorted(c.incident.labels["service"] for c in missed) == ["inference", "logs"]
    back = e.on_events([beat("logs", T0 + 12)], T0 + 12)
    assert [(c.incident.labels["service"], c.change) for c in back] == [
        ("logs", Change.RESOLVED)
    ]


def test_a_planned_stop_is_not_missed_unless_expected() -> None:
    e = engine(HEARTBEAT)
    e.on_events([beat("logs", T0), beat("inference", T0)], T0)
    e.on_events([beat("logs", T0 + 1, "stopping"), beat("inference", T0 + 1, "stopping")], T0 + 1)
    missed = e.tick(T0 + 20)
    assert [c.incident.labels["service"] for c in missed] == ["inference"]
