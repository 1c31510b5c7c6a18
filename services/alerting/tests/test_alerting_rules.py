"""The rules file: what it accepts, and errors that say where and what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from vigie_alerting import rules
from vigie_contracts.events.alerts import Severity

GOOD = """
defaults: {update_interval: 30s, reopen_within: 2m}
rules:
  - name: high-score
    kind: event
    source: fraud_scores
    severity: critical
    match: {score: {gte: 0.9}}
    group_by: [customer_id]
    summary: "customer {customer_id}: {count} high scores"
  - name: blocked
    kind: event
    source: fraud_scores
    match: {decision: {in: [block, review]}}
  - name: auth-failures
    kind: event
    source: security_events
    match: {category: {eq: auth_failure}}
    group_by: [account]
    min_count: 5
    window: 5m
  - name: lag
    kind: consumer_lag
    groups: ["*"]
    exclude: ["bench-*"]
    threshold: 1000
    window: 2m
  - name: latency
    kind: latency
    pipelines:
      - {topic: payments.transactions, sla: 3s, name: ingest-cdc}
      - {topic: fraud.scores, sla: 100ms}
  - name: dead-letters
    kind: dead_letters
    threshold: 10
  - name: heartbeat
    kind: heartbeat
    expected: [inference]
    timeout: 30
webhooks:
  - name: oncall
    url: https://hooks.example.com/vigie
    secret_env: ONCALL_KEY
    match: {min_severity: critical, rules: [high-score]}
silences:
  - rule: lag
    labels: {group: reindex}
    ends_at: 2030-01-01T00:00:00Z
"""


def test_a_good_file_parses_with_its_durations_and_defaults() -> None:
    ruleset = rules.parse(GOOD)
    assert ruleset.defaults.update_interval == 30 and ruleset.defaults.reopen_within == 120
    by_name = {r.name: r for r in ruleset.rules}
    auth = by_name["auth-failures"]
    assert isinstance(auth, rules.EventRule) and auth.window == 300 and auth.quiet_for == 300
    latency = by_name["latency"]
    assert isinstance(latency, rules.LatencyRule)
    assert [p.sla for p in latency.pipelines] == [3.0, 0.1]
    assert ruleset.latency_topics() == {"payments.transactions", "fraud.scores"}
    lag = by_name["lag"]
    assert isinstance(lag, rules.ConsumerLagRule)
    assert lag.watches("features") and not lag.watches("bench-1")
    assert by_name["high-score"].severity is Severity.CRITICAL
    assert ruleset.silences[0].covers("lag", {"group": "reindex"}, now=0)
    assert not ruleset.silences[0].covers("lag", {"group": "other"}, now=0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rules: [{name: x, kind: event, source: fraud_scores, match: {scroe: {gte: 1}}}]",
         "rules[0] (x): Value error, match: ['scroe'] not fields of fraud_score"),
        ("rules: [{name: x, kind: event, source: nope}]", "rules[0] (x).source"),
        ("rules: [{name: x, kind: teleport}]", "rules[0] (x)"),
        ("rules: [{name: x, kind: consumer_lag}]", "rules[0] (x).threshold: Field required"),
        ("rules: [{name: x, kind: dead_letters, window: soon}]", "not a duration: 'soon'"),
        ("rules: [{name: x, kind: event, source: fraud_scores, summary: '{merchant}'}]",
         "summary uses ['merchant']"),
        ("rules: [{name: x, kind: heartbeat}, {name: x, kind: heartbeat}]",
         "two rules are named 'x'"),
        ("rules: [{name: X Y, kind: heartbeat}]", "names are lowercase"),
        ("rules: [{name: x, kind: heartbeat, timeout: -3}]", "greater than 0"),
        ("webhooks: [{name: w, url: ftp://x, secret_env: K}]", "webhooks[0] (w).url"),
        ("webhooks: [{name: w, url: 'http://x', secret_env: K, match: {rules: [zz]}}]",
         "unknown rules ['zz']"),
        ("silences: [{ends_at: 2030-01-01T00:00:00}]", "need a timezone"),
        ("rules: [{name: x, kind: event, source: fraud_scores, match: {score: {}}}]",
         "at least one of"),
        ("- just\n- a list", "expected a mapping"),
        ("rules: [unclosed", "not valid YAML"),
    ],
)
def test_bad_files_say_where_and_what(text: str, expected: str) -> None:
    with pytest.raises(rules.RulesError) as caught:
        rules.parse(text, "rules.yaml")
    assert str(caught.value).startswith("rules.yaml: ")
    assert expected in str(caught.value)


def test_every_problem_is_listed_at_once() -> None:
    text = """
rules:
  - {name: a, kind: consumer_lag}
  - {name: b, kind: latency, pipelines: []}
"""
    with pytest.raises(rules.RulesError) as caught:
        rules.parse(text)
    message = str(caught.value)
    assert "rules[0] (a).threshold" in message and "rules[1] (b).pipelines" in message


def test_conditions_hold_as_written() -> None:
    c = rules.Condition.model_validate({"gte": 0.5, "lt": 0.9})
    assert c.holds(0.5) and c.holds(0.89) and not c.holds(0.9) and not c.holds("0.7")
    assert rules.Condition.model_validate({"in": ["block", "review"]}).holds("block")
    assert not rules.Condition.model_validate({"ne": "approve"}).holds("approve")
    assert rules.Condition.model_validate({"eq": True}).holds(True)


def test_load_needs_the_file_and_the_webhook_keys(tmp_path: Path) -> None:
    with pytest.raises(rules.RulesError, match="cannot read the rules file"):
        rules.load(tmp_path / "missing.yaml")
    path = tmp_path / "rules.yaml"
    path.write_text(GOOD)
    with pytest.raises(rules.RulesError, match=r"oncall \(ONCALL_KEY\)"):
        rules.load(path, environ={})
    assert len(rules.load(path, environ={"ONCALL_KEY": "k"}).webhooks) == 1


CHART = Path(__file__).resolve().parents[3] / "deploy" / "helm" / "alerting"


@pytest.mark.parametrize(
    "values", ["values.yaml", "ci/existing-secret-values.yaml"], ids=["defaults", "ci"]
)
def test_the_charts_rules_are_valid(values: str) -> None:
    data = yaml.safe_load((CHART / values).read_text())
    ruleset = rules.parse(yaml.safe_dump(data["rules"]), values)
    assert ruleset.rules
    # every webhook key the rules name is one the chart's secrets provide
    chart = yaml.safe_load((CHART / "values.yaml").read_text())
    assert {w.secret_env for w in ruleset.webhooks} <= set(chart["secrets"])
