"""The alert rules file (YAML): its schema, and loading it with errors an operator can act on.

A file holds ``rules`` (what raises an alert), ``webhooks`` (where alerts go besides the
``alerts`` topic and MongoDB) and ``silences`` (alerts kept off the webhooks for a while).
Durations are seconds or strings such as ``"90s"``, ``"5m"``, ``"2h"``. Every rule kind:

- ``event``: events of a ``source`` topic matching ``match`` (field → condition), counted per
  ``group_by`` over ``window``; fires at ``min_count`` and resolves after ``resolve_after`` without
  a matching event. Fraud thresholds and decisions (``min_count: 1``), bursts of high scores, N
  authentication failures of one account in M minutes and drift signals are all of this kind.
- ``consumer_lag``: a consumer group's lag (read from Kafka) above ``threshold`` in each of the
  last ``min_samples`` samples of ``window``, and not shrinking: committed offsets that do not
  move, or a lag that grows (Burrow's judgement, never one sample).
- ``latency``: per pipeline output topic, the ``quantile`` of record timestamp − event time over
  ``window`` above the pipeline's ``sla``.
- ``dead_letters``: at least ``threshold`` records on a service's dead-letter topic in ``window``
  (parse and contract errors end there).
- ``heartbeat``: a watched service with no instance heartbeating for ``timeout`` (a service whose
  instances said they were stopping is not missed, unless it is ``expected``).

The file is validated as a whole: a bad file is refused with every problem listed, and a
running service keeps the rules it had.
"""

from __future__ import annotations

import fnmatch
import operator
import os
import re
import string
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from vigie_contracts.events import DriftSignal, Event, FraudScore, SecurityEvent
from vigie_contracts.events.alerts import AlertCategory, Severity


class RulesError(ValueError):
    """The rules file cannot be used; the message lists every problem and where it is."""


_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")


def _seconds(value: Any) -> Any:
    if isinstance(value, str):
        found = _DURATION.match(value)
        if found is None:
            raise ValueError(f"not a duration: {value!r} (e.g. 30, '30s', '5m', '2h')")
        return float(found.group(1)) * _UNITS[found.group(2) or "s"]
    return value


#: a positive duration in seconds (YAML: a number or "500ms", "30s", "5m", "2h", "1d")
Duration = Annotated[float, BeforeValidator(_seconds), Field(gt=0)]

SEVERITY_ORDER = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}

#: the event sources of ``event`` rules: the topic setting they read, and their model
SOURCES: dict[str, tuple[type[Event], AlertCategory]] = {
    "fraud_scores": (FraudScore, AlertCategory.FRAUD),
    "security_events": (SecurityEvent, AlertCategory.SECURITY),
    "drift_signals": (DriftSignal, AlertCategory.MODEL),
}
Source = Literal["fraud_scores", "security_events", "drift_signals"]


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Condition(_Strict):
    """One field's test; every test given must hold."""

    eq: str | float | bool | None = None
    ne: str | float | bool | None = None
    in_: list[str | float] | None = Field(default=None, alias="in")
    gte: float | None = None
    gt: float | None = None
    lte: float | None = None
    lt: float | None = None

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    @model_validator(mode="after")
    def _one_at_least(self) -> Condition:
        if not self.model_fields_set:
            raise ValueError("a condition needs at least one of eq, ne, in, gte, gt, lte, lt")
        return self

    def holds(self, value: Any) -> bool:
        if hasattr(value, "value"):  # a StrEnum compares as its text
            value = value.value
        if "eq" in self.model_fields_set and value != self.eq:
            return False
        if "ne" in self.model_fields_set and value == self.ne:
            return False
        if self.in_ is not None and value not in self.in_:
            return False
        for bound, test in (
            (self.gte, operator.ge),
            (self.gt, operator.gt),
            (self.lte, operator.le),
            (self.lt, operator.lt),
        ):
            if bound is None:
                continue
            if not isinstance(value, int | float) or isinstance(value, bool):
                return False
            if not test(value, bound):
                return False
        return True


def _name(value: str) -> str:
    if not re.fullmatch(r"[a-z0-9][a-z0-9_.-]{0,99}", value):
        raise ValueError("names are lowercase letters, digits, '.', '_' and '-' (at most 100)")
    return value


Name = Annotated[str, AfterValidator(_name)]


class _Rule(_Strict):
    name: Name
    severity: Severity = Severity.WARNING
    description: str = ""
    #: Python format string over the alert's labels and ``{count}``; empty: a generated one
    summary: str = ""
    enabled: bool = True

    def label_names(self) -> set[str]:
        return set()

    @model_validator(mode="after")
    def _summary_fields(self) -> _Rule:
        known = self.label_names() | {"count", "rule", "value"}
        try:
            fields = {f for _, f, _, _ in string.Formatter().parse(self.summary) if f}
        except ValueError as exc:
            raise ValueError(f"summary is not a valid format string: {exc}") from None
        unknown = {f.split(".")[0].split("[")[0] for f in fields} - known
        if unknown:
            raise ValueError(f"summary uses {sorted(unknown)}; known fields: {sorted(known)}")
        return self


class EventRule(_Rule):
    kind: Literal["event"]
    source: Source
    #: default: the source's (fraud, security, model)
    category: AlertCategory | None = None
    match: dict[str, Condition] = Field(default_factory=dict)
    group_by: list[str] = Field(default_factory=list)
    min_count: int = Field(default=1, ge=1)
    window: Duration = 60.0
    #: default: ``window``
    resolve_after: Duration | None = None

    @model_validator(mode="after")
    def _fields_exist(self) -> EventRule:
        model = SOURCES[self.source][0]
        known = set(model.model_fields)
        for where, names in (("match", list(self.match)), ("group_by", self.group_by)):
            unknown = [n for n in names if n not in known]
            if unknown:
                raise ValueError(
                    f"{where}: {unknown} not fields of {model.EVENT_TYPE} "
                    f"(fields: {sorted(known)})"
                )
        return self

    def label_names(self) -> set[str]:
        return set(self.group_by)

    @property
    def alert_category(self) -> AlertCategory:
        return self.category or SOURCES[self.source][1]

    @property
    def quiet_for(self) -> float:
        return self.resolve_after if self.resolve_after is not None else self.window


class ConsumerLagRule(_Rule):
    kind: Literal["consumer_lag"]
    #: glob patterns of group ids watched; ``exclude`` wins
    groups: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    exclude: list[str] = Field(default_factory=list)
    #: records behind, summed over the group's partitions
    threshold: int = Field(ge=0)
    window: Duration = 120.0
    min_samples: int = Field(default=3, ge=2)

    def label_names(self) -> set[str]:
        return {"group", "lag"}

    def watches(self, group: str) -> bool:
        return any(fnmatch.fnmatchcase(group, p) for p in self.groups) and not any(
            fnmatch.fnmatchcase(group, p) for p in self.exclude
        )


class Pipeline(_Strict):
    #: the pipeline's output topic; its records' timestamp − event time is the latency
    topic: str = Field(min_length=1)
    sla: Duration
    name: str = ""

    @property
    def label(self) -> str:
        return self.name or self.topic


class LatencyRule(_Rule):
    kind: Literal["latency"]
    pipelines: list[Pipeline] = Field(min_length=1)
    quantile: float = Field(default=0.99, gt=0, lt=1)
    window: Duration = 60.0
    min_samples: int = Field(default=20, ge=1)

    def label_names(self) -> set[str]:
        return {"pipeline", "topic", "sla"}


class DeadLetterRule(_Rule):
    kind: Literal["dead_letters"]
    #: services whose dead-letter topics count (glob patterns)
    services: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    threshold: int = Field(default=1, ge=1)
    window: Duration = 300.0

    def label_names(self) -> set[str]:
        return {"service", "error_type"}


class HeartbeatRule(_Rule):
    kind: Literal["heartbeat"]
    #: glob patterns of services watched once they heartbeat
    services: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    #: services that must run: missed even when never seen or stopped on purpose
    expected: list[str] = Field(default_factory=list)
    timeout: Duration = 30.0

    def label_names(self) -> set[str]:
        return {"service"}

    def watches(self, service: str) -> bool:
        return service in self.expected or any(
            fnmatch.fnmatchcase(service, p) for p in self.services
        )


Rule = Annotated[
    EventRule | ConsumerLagRule | LatencyRule | DeadLetterRule | HeartbeatRule,
    Field(discriminator="kind"),
]


class WebhookMatch(_Strict):
    """Which alerts a webhook gets: all the lists given must contain the alert's value."""

    categories: list[AlertCategory] = Field(default_factory=list)
    rules: list[str] = Field(default_factory=list)
    min_severity: Severity = Severity.INFO


class Webhook(_Strict):
    name: Name
    url: str = Field(pattern=r"^https?://")
    #: environment variable holding the HMAC-SHA256 key (from a Secret, never in this file)
    secret_env: str = Field(pattern=r"^[A-Z_][A-Z0-9_]*$")
    match: WebhookMatch = WebhookMatch()
    #: also send count updates of a firing alert (default: fired, acknowledged, resolved)
    send_updates: bool = False
    timeout: Duration = 5.0
    backoff_initial: Duration = 0.5
    backoff_max: Duration = 30.0
    #: consecutive failures that open the circuit; ``open_for`` later one trial is let through
    failure_threshold: int = Field(default=5, ge=1)
    open_for: Duration = 30.0
    #: an alert not delivered after this long is given up (and logged)
    max_age: Duration = 86_400.0
    #: requests in flight; the changes of one alert always go one after the other, in order
    #: (read when the webhook is created: a change needs a restart)
    concurrency: int = Field(default=4, ge=1, le=64)

    @model_validator(mode="after")
    def _backoff(self) -> Webhook:
        if self.backoff_max < self.backoff_initial:
            raise ValueError("backoff_max must be >= backoff_initial")
        return self


class Silence(_Strict):
    """Alerts of ``rule`` whose labels include ``labels`` are not sent to webhooks meanwhile
    (they still go to the topic and MongoDB, marked ``silenced``)."""

    rule: str = "*"
    labels: dict[str, str] = Field(default_factory=dict)
    starts_at: float | None = None
    ends_at: float
    comment: str = ""

    @field_validator("starts_at", "ends_at", mode="before")
    @classmethod
    def _epoch(cls, value: Any) -> Any:
        # YAML gives datetimes for ISO timestamps
        if hasattr(value, "timestamp"):
            if getattr(value, "tzinfo", None) is None:
                raise ValueError("timestamps need a timezone (e.g. 2026-11-26T10:00:00Z)")
            return value.timestamp()
        return value

    def covers(self, rule: str, labels: Mapping[str, str], now: float) -> bool:
        if self.starts_at is not None and now < self.starts_at:
            return False
        if now >= self.ends_at or not fnmatch.fnmatchcase(rule, self.rule):
            return False
        return all(labels.get(k) == v for k, v in self.labels.items())


class Defaults(_Strict):
    #: a firing alert's count is published again at most this often
    update_interval: Duration = 60.0
    #: a resolved alert firing again within this is the same incident, reopened
    reopen_within: Duration = 300.0


class RuleSet(_Strict):
    defaults: Defaults = Defaults()
    rules: list[Rule] = Field(default_factory=list)
    webhooks: list[Webhook] = Field(default_factory=list)
    silences: list[Silence] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_and_known(self) -> RuleSet:
        for what, names in (
            ("rule", [r.name for r in self.rules]),
            ("webhook", [w.name for w in self.webhooks]),
        ):
            seen: set[str] = set()
            for n in names:
                if n in seen:
                    raise ValueError(f"two {what}s are named {n!r}")
                seen.add(n)
        rule_names = {r.name for r in self.rules}
        for hook in self.webhooks:
            unknown = set(hook.match.rules) - rule_names
            if unknown:
                raise ValueError(f"webhook {hook.name!r} matches unknown rules {sorted(unknown)}")
        return self

    @property
    def active(self) -> list[Any]:
        return [r for r in self.rules if r.enabled]

    def rule(self, name: str) -> Any:
        return next((r for r in self.rules if r.name == name), None)

    def latency_topics(self) -> set[str]:
        return {p.topic for r in self.active if isinstance(r, LatencyRule) for p in r.pipelines}


def _where(loc: tuple[int | str, ...], data: Any) -> str:
    """``rules[2] (high-score).match`` from pydantic's location, with the rule's name."""
    parts: list[str] = []
    node = data
    for part in loc:
        if isinstance(part, int):
            name = node[part].get("name") if isinstance(node, list) and isinstance(
                node[part], dict
            ) else None
            parts[-1] = f"{parts[-1]}[{part}]" + (f" ({name})" if name else "")
        elif part in {"event", "consumer_lag", "latency", "dead_letters", "heartbeat"}:
            continue  # the discriminator's branch: the kind is in the file already
        else:
            parts.append(str(part))
        if isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        elif isinstance(node, dict) and part in node:
            node = node[part]
    return ".".join(parts) or "(file)"


def parse(text: str, origin: str = "<rules>") -> RuleSet:
    """A rule set from YAML text, or ``RulesError`` listing each problem with its place."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RulesError(f"{origin}: not valid YAML: {exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RulesError(f"{origin}: expected a mapping with rules, webhooks, silences")
    try:
        ruleset = RuleSet.model_validate(data)
    except ValidationError as exc:
        problems = [f"{_where(tuple(e['loc']), data)}: {e['msg']}" for e in exc.errors()]
        raise RulesError(f"{origin}: " + "; ".join(problems)) from None
    return ruleset


def check_environment(ruleset: RuleSet, environ: Mapping[str, str] | None = None) -> None:
    """Every webhook's key is set: a webhook that cannot sign must not start."""
    env = os.environ if environ is None else environ
    missing = [f"{w.name} ({w.secret_env})" for w in ruleset.webhooks if not env.get(w.secret_env)]
    if missing:
        raise RulesError(f"webhook keys not set in the environment: {', '.join(missing)}")


def load(path: Path, environ: Mapping[str, str] | None = None) -> RuleSet:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RulesError(f"cannot read the rules file {path}: {exc.strerror}") from None
    ruleset = parse(text, str(path))
    check_environment(ruleset, environ)
    return ruleset
