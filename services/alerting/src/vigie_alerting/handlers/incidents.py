"""Incidents: one alert per rule and fingerprint, with a count, until the condition clears.

Deduplication: while an incident is open, more evidence only raises its count; the count is
published at most once per ``update_interval``. A resolved incident that fires again within
``reopen_within`` is reopened (same alert id) rather than raising a new alert: a flapping
condition is one incident. Acknowledging keeps it open but quiet; resolving by hand closes it
(if the condition still holds, the next evidence opens a new one).

Pure: the clock is an argument (seconds since the epoch), nothing here does I/O.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum

from vigie_contracts.events import Alert
from vigie_contracts.events.alerts import AlertCategory, AlertStatus, Severity

#: transaction ids kept per fraud incident, for labelling
MAX_TRANSACTIONS = 100


class Change(StrEnum):
    FIRED = "fired"
    UPDATED = "updated"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


def fingerprint(rule: str, labels: Mapping[str, str]) -> str:
    """Stable identity of an incident: the rule and its grouping labels."""
    text = rule + "\x1f" + "\x1f".join(f"{k}={labels[k]}" for k in sorted(labels))
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _ts(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


@dataclass(frozen=True, slots=True)
class Evidence:
    """What a condition says about one incident now."""

    rule: str
    category: AlertCategory
    severity: Severity
    #: the grouping labels: they make the fingerprint
    key: Mapping[str, str]
    summary: str
    count: int = 1
    #: more labels (latest values: lag, p99...), not part of the identity
    details: Mapping[str, str] = field(default_factory=dict)
    transaction_ids: tuple[str, ...] = ()


@dataclass(slots=True)
class Incident:
    alert_id: str
    rule: str
    category: AlertCategory
    severity: Severity
    fingerprint: str
    labels: dict[str, str]
    summary: str
    count: int
    first_seen: float
    last_seen: float
    status: AlertStatus = AlertStatus.FIRING
    #: bumped by every published change; the history keeps the newest
    revision: int = 0
    published_at: float = 0.0
    dirty: bool = False
    acknowledged_by: str | None = None
    resolved_by: str | None = None
    resolved_at: float | None = None
    transaction_ids: list[str] = field(default_factory=list)

    @property
    def open(self) -> bool:
        return self.status is not AlertStatus.RESOLVED

    def alert(self) -> Alert:
        return Alert(
            alert_id=self.alert_id,
            rule=self.rule,
            category=self.category,
            severity=self.severity,
            status=self.status,
            fingerprint=self.fingerprint,
            summary=self.summary,
            count=self.count,
            first_seen=_ts(self.first_seen),
            last_seen=_ts(self.last_seen),
            labels=dict(self.labels),
        )


@dataclass(frozen=True, slots=True)
class AlertChange:
    """One published state of an incident (a snapshot: later changes do not alter it)."""

    change: Change
    incident: Incident
    at: float
    by: str | None = None

    @property
    def event_id(self) -> str:
        """Unique per published state: the webhooks' idempotency key."""
        return f"{self.incident.alert_id}:{self.incident.revision}"


class IncidentBook:
    def __init__(self, *, update_interval: float, reopen_within: float) -> None:
        self.update_interval = update_interval
        self.reopen_within = reopen_within
        self._by_fingerprint: dict[str, Incident] = {}
        self._by_id: dict[str, Incident] = {}

    # -- what the book holds ----------------------------------------------------------------

    def get(self, alert_id: str) -> Incident | None:
        return self._by_id.get(alert_id)

    def by_fingerprint(self, fp: str) -> Incident | None:
        return self._by_fingerprint.get(fp)

    def open_incidents(self, rule: str | None = None) -> list[Incident]:
        return [
            i
            for i in self._by_fingerprint.values()
            if i.open and (rule is None or i.rule == rule)
        ]

    def restore(self, incidents: Iterable[Incident]) -> None:
        """Incidents from the history (after a restart): dedup continues where it was."""
        for incident in incidents:
            known = self._by_fingerprint.get(incident.fingerprint)
            if known is None or incident.last_seen >= known.last_seen:
                self._by_fingerprint[incident.fingerprint] = incident
                self._by_id[incident.alert_id] = incident

    def configure(self, *, update_interval: float, reopen_within: float) -> None:
        self.update_interval = update_interval
        self.reopen_within = reopen_within

    # -- transitions --------------------------------------------------------------------------

    def _publish(
        self, incident: Incident, change: Change, now: float, by: str | None = None
    ) -> AlertChange:
        incident.revision += 1
        incident.published_at = now
        incident.dirty = False
        return AlertChange(change, replace(incident, labels=dict(incident.labels)), now, by)

    def observe(self, evidence: Evidence, now: float) -> AlertChange | None:
        """More evidence for the incident of ``evidence.key``: opens, reopens or counts."""
        fp = fingerprint(evidence.rule, evidence.key)
        incident = self._by_fingerprint.get(fp)
        labels = {**evidence.key, **evidence.details}
        if incident is not None and incident.open:
            incident.count += evidence.count
            incident.last_seen = now
            incident.summary = evidence.summary
            incident.labels = labels
            incident.severity = evidence.severity
            self._remember(incident, evidence.transaction_ids)
            incident.dirty = True
            return self.flush(incident, now)
        if incident is not None and self.reopens(incident, now):
            incident.status = AlertStatus.FIRING
            incident.count += evidence.count
            incident.last_seen = now
            incident.summary = evidence.summary
            incident.labels = labels
            incident.resolved_at = None
            incident.resolved_by = None
            incident.acknowledged_by = None
            self._remember(incident, evidence.transaction_ids)
            return self._publish(incident, Change.FIRED, now)
        incident = Incident(
            alert_id=str(uuid.uuid4()),
            rule=evidence.rule,
            category=evidence.category,
            severity=evidence.severity,
            fingerprint=fp,
            labels=labels,
            summary=evidence.summary,
            count=evidence.count,
            first_seen=now,
            last_seen=now,
        )
        self._remember(incident, evidence.transaction_ids)
        self._by_fingerprint[fp] = incident
        self._by_id[incident.alert_id] = incident
        return self._publish(incident, Change.FIRED, now)

    def reopens(self, incident: Incident, now: float) -> bool:
        """Whether new evidence now reopens this resolved incident."""
        return incident.resolved_at is not None and now - incident.resolved_at < self.reopen_within

    def flush(self, incident: Incident, now: float) -> AlertChange | None:
        """The count update of a firing incident, if one is due."""
        if (
            incident.dirty
            and incident.open
            and now - incident.published_at >= self.update_interval
        ):
            return self._publish(incident, Change.UPDATED, now)
        return None

    def flush_all(self, now: float) -> list[AlertChange]:
        out = []
        for incident in self.open_incidents():
            change = self.flush(incident, now)
            if change is not None:
                out.append(change)
        return out

    def clear(self, fp: str, now: float, summary: str | None = None) -> AlertChange | None:
        """The condition no longer holds: resolve the open incident, if any."""
        incident = self._by_fingerprint.get(fp)
        if incident is None or not incident.open:
            return None
        return self._resolve(incident, now, None, summary)

    def _resolve(
        self, incident: Incident, now: float, by: str | None, summary: str | None
    ) -> AlertChange:
        incident.status = AlertStatus.RESOLVED
        incident.resolved_at = now
        incident.resolved_by = by
        if summary:
            incident.summary = summary
        return self._publish(incident, Change.RESOLVED, now, by)

    def acknowledge(self, alert_id: str, by: str, now: float) -> AlertChange | None:
        """None when unknown or already resolved; acknowledging twice changes nothing new."""
        incident = self._by_id.get(alert_id)
        if incident is None or not incident.open:
            return None
        incident.status = AlertStatus.ACKNOWLEDGED
        incident.acknowledged_by = by
        return self._publish(incident, Change.ACKNOWLEDGED, now, by)

    def resolve(self, alert_id: str, by: str, now: float) -> AlertChange | None:
        incident = self._by_id.get(alert_id)
        if incident is None or not incident.open:
            return None
        change = self._resolve(incident, now, by, None)
        # resolved by hand: evidence after this is a new incident, not a reopening
        incident.resolved_at = now - self.reopen_within
        return change

    def forget(self, now: float) -> None:
        """Drop resolved incidents too old to be reopened (memory stays bounded)."""
        doomed = [
            i
            for i in self._by_fingerprint.values()
            if i.resolved_at is not None and now - i.resolved_at >= self.reopen_within
        ]
        for incident in doomed:
            del self._by_fingerprint[incident.fingerprint]
            self._by_id.pop(incident.alert_id, None)

    @staticmethod
    def _remember(incident: Incident, ids: Iterable[str]) -> None:
        for tid in ids:
            if tid not in incident.transaction_ids:
                incident.transaction_ids.append(tid)
        del incident.transaction_ids[:-MAX_TRANSACTIONS]
