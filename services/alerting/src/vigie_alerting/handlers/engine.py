"""The rule engine: events, dead letters, lag readings and clock ticks in, alert changes out.

Pure and single-threaded: the service calls it from one event loop and routes what it returns.
Event ids already seen are ignored, so a batch the consumer loop retries is not counted twice.
"""

from __future__ import annotations

import fnmatch
from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from vigie_contracts.events import Event, ServiceHeartbeat
from vigie_contracts.events.alerts import AlertCategory

from .. import rules as r
from .conditions import (
    DeadLetters,
    EventWindow,
    GroupOffsets,
    Instance,
    LagPoint,
    LatencyWindow,
    heartbeat_missed,
    judge_lag,
    quantile,
)
from .incidents import AlertChange, Evidence, Incident, IncidentBook, fingerprint

#: event ids remembered to ignore redeliveries
SEEN_IDS = 100_000
#: lag readings kept per group (the longest window's worth is what matters)
MAX_LAG_POINTS = 1_000


@dataclass(frozen=True, slots=True)
class Observed:
    """One event as the engine needs it: where it came from and its two clocks."""

    topic: str
    event_id: str
    payload: Event
    #: the envelope's event time, and the record's (broker) timestamp, in epoch seconds
    event_time: float
    record_time: float


@dataclass(frozen=True, slots=True)
class DeadLetterSeen:
    service: str
    error_type: str
    record_time: float


def _text(value: Any) -> str:
    if hasattr(value, "value"):
        value = value.value
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _summary(rule: Any, labels: Mapping[str, str], count: int, value: str, default: str) -> str:
    if not rule.summary:
        return default
    try:
        text: str = rule.summary.format(**labels, count=count, rule=rule.name, value=value)
    except (KeyError, IndexError, ValueError, AttributeError):
        return default
    return text


class Engine:
    def __init__(
        self,
        ruleset: r.RuleSet,
        *,
        sources: Mapping[str, str],
        heartbeat_topic: str,
        now: float,
    ) -> None:
        """``sources``: topic name → event source (``fraud_scores``...)."""
        self.sources = dict(sources)
        self.heartbeat_topic = heartbeat_topic
        self.started_at = now
        self.book = IncidentBook(update_interval=60.0, reopen_within=300.0)
        self.ruleset = ruleset
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._windows: dict[tuple[str, str], EventWindow] = {}  # (rule, fingerprint)
        self._latency: dict[str, LatencyWindow] = {}
        self._dead: dict[str, DeadLetters] = {}
        self._lag: dict[str, deque[LagPoint]] = {}
        self._lag_seen_at: dict[str, float] = {}
        self._instances: dict[str, dict[str, Instance]] = {}
        self.reload(ruleset, now)

    # -- configuration ------------------------------------------------------------------------

    def reload(self, ruleset: r.RuleSet, now: float) -> list[AlertChange]:
        """Use ``ruleset`` from now on; incidents of rules that are gone or disabled resolve."""
        self.ruleset = ruleset
        self.book.configure(
            update_interval=ruleset.defaults.update_interval,
            reopen_within=ruleset.defaults.reopen_within,
        )
        active = {rule.name: rule for rule in ruleset.active}
        self._rules: dict[str, Any] = active
        changes: list[AlertChange] = []
        for incident in self.book.open_incidents():
            if incident.rule not in active:
                change = self.book.clear(incident.fingerprint, now, "rule removed")
                if change is not None:
                    changes.append(change)
        self._windows = {k: w for k, w in self._windows.items() if k[0] in active}
        return changes

    def restore(self, incidents: Iterable[Incident], now: float) -> None:
        """Open incidents from the history: their quiet period starts now."""
        incidents = list(incidents)
        self.book.restore(incidents)
        for incident in incidents:
            if incident.open:
                key = (incident.rule, incident.fingerprint)
                self._windows.setdefault(key, EventWindow()).last_match = now

    def silenced(self, change: AlertChange, now: float) -> bool:
        incident = change.incident
        return any(s.covers(incident.rule, incident.labels, now) for s in self.ruleset.silences)

    def rules_of(self, kind: type[Any]) -> list[Any]:
        return [rule for rule in self._rules.values() if isinstance(rule, kind)]

    # -- inputs ---------------------------------------------------------------------------------

    def _new(self, event_id: str) -> bool:
        if event_id in self._seen:
            return False
        self._seen[event_id] = None
        if len(self._seen) > SEEN_IDS:
            self._seen.popitem(last=False)
        return True

    def on_events(self, events: Sequence[Observed], now: float) -> list[AlertChange]:
        changes: list[AlertChange] = []
        latency_topics = {
            p.topic for rule in self.rules_of(r.LatencyRule) for p in rule.pipelines
        }
        for event in events:
            if not self._new(f"{event.topic}/{event.event_id}"):
                continue
            if event.topic in latency_topics:
                window = self._latency.setdefault(event.topic, LatencyWindow())
                window.add(now, event.record_time - event.event_time)
            if event.topic == self.heartbeat_topic and isinstance(event.payload, ServiceHeartbeat):
                changes += self._heartbeat(event.payload, now)
            source = self.sources.get(event.topic)
            if source is not None:
                changes += self._match(source, event, now)
        return changes

    def _match(self, source: str, event: Observed, now: float) -> list[AlertChange]:
        changes: list[AlertChange] = []
        payload = event.payload
        for rule in self.rules_of(r.EventRule):
            if rule.source != source:
                continue
            if not all(cond.holds(getattr(payload, f)) for f, cond in rule.match.items()):
                continue
            key = {g: _text(getattr(payload, g)) for g in rule.group_by}
            fp = fingerprint(rule.name, key)
            window = self._windows.setdefault((rule.name, fp), EventWindow())
            in_window = window.add(event.event_time, rule.window)
            window.last_match = now
            incident = self.book.by_fingerprint(fp)
            firing = incident is not None and incident.open
            if not firing and in_window < rule.min_count:
                continue
            details = {f: _text(getattr(payload, f)) for f in rule.match}
            tid = getattr(payload, "transaction_id", None)
            if isinstance(tid, str):
                details["transaction_id"] = tid
            # events already counted by this incident (open, or about to reopen) count once
            counted = incident is not None and (firing or self.book.reopens(incident, now))
            count = 1 if counted else in_window
            default = (
                f"{rule.name}: {in_window} {payload.EVENT_TYPE} in {rule.window:g}s"
                + (f" for {', '.join(f'{k}={v}' for k, v in key.items())}" if key else "")
            )
            evidence = Evidence(
                rule=rule.name,
                category=rule.alert_category,
                severity=rule.severity,
                key=key,
                summary=_summary(rule, {**details, **key}, in_window, str(in_window), default),
                count=count,
                details=details,
                transaction_ids=(tid,) if isinstance(tid, str) else (),
            )
            change = self.book.observe(evidence, now)
            if change is not None:
                changes.append(change)
        return changes

    def _heartbeat(self, beat: ServiceHeartbeat, now: float) -> list[AlertChange]:
        stopping = beat.details.get("state") == "stopping"
        self._instances.setdefault(beat.service, {})[beat.instance] = Instance(now, stopping)
        if stopping:
            return []
        changes = []
        for rule in self.rules_of(r.HeartbeatRule):
            change = self.book.clear(
                fingerprint(rule.name, {"service": beat.service}),
                now,
                f"{beat.service} heartbeats again ({beat.instance})",
            )
            if change is not None:
                changes.append(change)
        return changes

    def on_dead_letters(self, letters: Sequence[DeadLetterSeen], now: float) -> list[AlertChange]:
        services = set()
        for letter in letters:
            self._dead.setdefault(letter.service, DeadLetters()).add(
                letter.record_time, letter.error_type
            )
            services.add(letter.service)
        changes: list[AlertChange] = []
        for service in sorted(services):
            added = sum(1 for letter in letters if letter.service == service)
            changes += self._judge_dead_letters(service, now, added)
        return changes

    def _judge_dead_letters(self, service: str, now: float, added: int) -> list[AlertChange]:
        changes: list[AlertChange] = []
        for rule in self.rules_of(r.DeadLetterRule):
            if not any(fnmatch.fnmatchcase(service, p) for p in rule.services):
                continue
            count, top = self._dead[service].count(now, rule.window)
            fp = fingerprint(rule.name, {"service": service})
            incident = self.book.by_fingerprint(fp)
            firing = incident is not None and incident.open
            if count >= rule.threshold and (added or not firing):
                labels = {"service": service, "error_type": top}
                default = (
                    f"{service}: {count} dead letters in {rule.window:g}s (mostly {top})"
                )
                change = self.book.observe(
                    Evidence(
                        rule=rule.name,
                        category=AlertCategory.PIPELINE,
                        severity=rule.severity,
                        key={"service": service},
                        summary=_summary(rule, labels, count, str(count), default),
                        count=added if firing else count,
                        details={"error_type": top, "in_window": str(count)},
                    ),
                    now,
                )
            elif count < rule.threshold and firing:
                change = self.book.clear(fp, now, f"{service}: dead letters back below threshold")
            else:
                change = None
            if change is not None:
                changes.append(change)
        return changes

    def on_lag(self, readings: Sequence[GroupOffsets], now: float) -> list[AlertChange]:
        """One poll of the groups' offsets; judged at once (each reading can end a window)."""
        for reading in readings:
            points = self._lag.setdefault(reading.group, deque(maxlen=MAX_LAG_POINTS))
            points.append(LagPoint(now, reading.lag, dict(reading.committed)))
            self._lag_seen_at[reading.group] = now
        return self._judge_lag(now)

    def _judge_lag(self, now: float) -> list[AlertChange]:
        changes: list[AlertChange] = []
        for rule in self.rules_of(r.ConsumerLagRule):
            for group, points in self._lag.items():
                if not rule.watches(group):
                    continue
                fp = fingerprint(rule.name, {"group": group})
                if now - self._lag_seen_at.get(group, 0) > rule.window:
                    change = self.book.clear(fp, now, f"consumer group {group} is gone")
                    changes += [change] if change is not None else []
                    continue
                verdict = judge_lag(points, rule, now)
                if verdict is None:
                    continue
                if verdict.active:
                    labels = {"group": group, "lag": str(verdict.lag)}
                    default = f"consumer group {group}: lag {verdict.lag} ({verdict.why})"
                    change = self.book.observe(
                        Evidence(
                            rule=rule.name,
                            category=AlertCategory.PIPELINE,
                            severity=rule.severity,
                            key={"group": group},
                            summary=_summary(rule, labels, 1, str(verdict.lag), default),
                            details={"lag": str(verdict.lag), "why": verdict.why},
                        ),
                        now,
                    )
                else:
                    change = self.book.clear(
                        fp, now, f"consumer group {group}: lag {verdict.lag} ({verdict.why})"
                    )
                if change is not None:
                    changes.append(change)
        return changes

    # -- the clock ------------------------------------------------------------------------------

    def tick(self, now: float) -> list[AlertChange]:
        """What time alone decides: quiet event rules resolve, latency and heartbeats are
        judged, dead-letter windows slide, due count updates go out."""
        changes: list[AlertChange] = []
        for rule in self.rules_of(r.EventRule):
            for incident in self.book.open_incidents(rule.name):
                window = self._windows.get((rule.name, incident.fingerprint))
                last = window.last_match if window is not None else 0.0
                if now - last >= rule.quiet_for:
                    change = self.book.clear(
                        incident.fingerprint, now, f"{incident.summary} (quiet {rule.quiet_for:g}s)"
                    )
                    changes += [change] if change is not None else []
        changes += self._tick_latency(now)
        changes += self._tick_heartbeats(now)
        for service in list(self._dead):
            changes += self._judge_dead_letters(service, now, 0)
        changes += self.book.flush_all(now)
        self._evict(now)
        return changes

    def _tick_latency(self, now: float) -> list[AlertChange]:
        changes: list[AlertChange] = []
        for rule in self.rules_of(r.LatencyRule):
            for pipeline in rule.pipelines:
                key = {"pipeline": pipeline.label}
                fp = fingerprint(rule.name, key)
                window = self._latency.get(pipeline.topic)
                samples = window.within(now, rule.window) if window is not None else []
                if len(samples) < rule.min_samples:
                    change = self.book.clear(fp, now, f"{pipeline.label}: too few records to judge")
                else:
                    q = quantile(samples, rule.quantile)
                    pct = f"p{rule.quantile * 100:g}"
                    text = (
                        f"{pipeline.label}: {pct} latency {q * 1000:.0f} ms over "
                        f"{rule.window:g}s (SLA {pipeline.sla * 1000:.0f} ms, "
                        f"{len(samples)} records)"
                    )
                    if q > pipeline.sla:
                        labels = {
                            "pipeline": pipeline.label,
                            "topic": pipeline.topic,
                            "sla": f"{pipeline.sla:g}",
                        }
                        change = self.book.observe(
                            Evidence(
                                rule=rule.name,
                                category=AlertCategory.PIPELINE,
                                severity=rule.severity,
                                key=key,
                                summary=_summary(rule, labels, 1, f"{q:.3f}", text),
                                details={
                                    "topic": pipeline.topic,
                                    "latency_s": f"{q:.3f}",
                                    "sla_s": f"{pipeline.sla:g}",
                                },
                            ),
                            now,
                        )
                    else:
                        change = self.book.clear(fp, now, text)
                if change is not None:
                    changes.append(change)
        return changes

    def _tick_heartbeats(self, now: float) -> list[AlertChange]:
        changes: list[AlertChange] = []
        for rule in self.rules_of(r.HeartbeatRule):
            services = {s for s in self._instances if rule.watches(s)} | set(rule.expected)
            for service in sorted(services):
                why = heartbeat_missed(
                    self._instances.get(service), rule, service, now, self.started_at
                )
                key = {"service": service}
                if why is None:
                    change = self.book.clear(fingerprint(rule.name, key), now)
                else:
                    change = self.book.observe(
                        Evidence(
                            rule=rule.name,
                            category=AlertCategory.PIPELINE,
                            severity=rule.severity,
                            key=key,
                            summary=_summary(rule, key, 1, why, why),
                        ),
                        now,
                    )
                if change is not None:
                    changes.append(change)
        return changes

    def _evict(self, now: float) -> None:
        """Forget what no window needs any more."""
        longest = max((getattr(rule, "window", 0.0) for rule in self._rules.values()), default=0.0)
        keep_for = max(longest, self.book.reopen_within) + 60
        for key, window in list(self._windows.items()):
            incident = self.book.by_fingerprint(key[1])
            if now - window.last_match > keep_for and (incident is None or not incident.open):
                del self._windows[key]
        for group, seen in list(self._lag_seen_at.items()):
            if now - seen > keep_for:
                del self._lag_seen_at[group]
                self._lag.pop(group, None)
        for service, instances in list(self._instances.items()):
            for name, instance in list(instances.items()):
                if now - instance.last_at > 86_400:
                    del instances[name]
            if not instances:
                del self._instances[service]
        self.book.forget(now)

    # -- operators ------------------------------------------------------------------------------

    def acknowledge(self, alert_id: str, by: str, now: float) -> AlertChange | None:
        return self.book.acknowledge(alert_id, by, now)

    def resolve(self, alert_id: str, by: str, now: float) -> AlertChange | None:
        return self.book.resolve(alert_id, by, now)
