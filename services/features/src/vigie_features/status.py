"""What ``GET /status`` of the worker reports, and the worker's own Prometheus series."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client import Counter as PromCounter

from vigie_contracts.events.features import EntityType
from vigie_featureset import LateEventError


class FeatureMetrics:
    def __init__(self, service: str, registry: CollectorRegistry) -> None:
        self.service = service
        self.updates = PromCounter(
            "vigie_features_updates",
            "Events applied to an entity state, by outcome (applied, duplicate, late).",
            ["service", "entity_type", "outcome"],
            registry=registry,
        )
        self.late = PromCounter(
            "vigie_features_late_events",
            "Events older than the entity's horizon + allowed lateness: counted, not applied.",
            ["service", "entity_type", "kind"],
            registry=registry,
        )
        self.unrouted_labels = PromCounter(
            "vigie_features_unrouted_labels",
            "Fraud labels dropped because their transaction never reached the customer's state.",
            ["service"],
            registry=registry,
        )
        self.ignored = PromCounter(
            "vigie_features_ignored_events",
            "Events that change no feature (status changes, genuine labels), by reason.",
            ["service", "reason"],
            registry=registry,
        )
        self.redis_writes = PromCounter(
            "vigie_features_redis_writes",
            "Entity hashes written to Redis (written) or skipped because Redis had as new (stale).",
            ["service", "outcome"],
            registry=registry,
        )
        self.flush_seconds = Histogram(
            "vigie_features_redis_flush_seconds",
            "One pipelined flush of the pending entity hashes.",
            ["service"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5),
            registry=registry,
        )


@dataclass
class WorkerStatus:
    started_at: float = field(default_factory=time.time)
    store: str = "rocksdb"
    store_note: str | None = None
    consumed: Counter[str] = field(default_factory=Counter)  # topic
    applied: Counter[str] = field(default_factory=Counter)  # "<entity_type>:<outcome>"
    late: Counter[str] = field(default_factory=Counter)  # "<entity_type>:<kind>"
    ignored: Counter[str] = field(default_factory=Counter)  # reason
    dead_lettered: Counter[str] = field(default_factory=Counter)  # topic
    unrouted_labels: int = 0
    last_late: dict[str, Any] | None = None

    def count_late(self, entity_type: EntityType, exc: LateEventError) -> None:
        self.late[f"{entity_type.value}:{exc.kind}"] += 1
        self.last_late = {
            "entity_type": entity_type.value,
            "kind": exc.kind,
            "event_id": exc.event_id,
            "event_time": exc.event_time.isoformat(),
            "limit": exc.limit.isoformat(),
        }

    def snapshot(self, **extra: Any) -> dict[str, Any]:
        return {
            "uptime_s": round(time.time() - self.started_at, 1),
            "store": self.store,
            "store_note": self.store_note,
            "consumed": dict(sorted(self.consumed.items())),
            "applied": dict(sorted(self.applied.items())),
            "late_events": dict(sorted(self.late.items())),
            "late_total": sum(self.late.values()),
            "last_late_event": self.last_late,
            "ignored": dict(sorted(self.ignored.items())),
            "dead_lettered": dict(sorted(self.dead_lettered.items())),
            "unrouted_labels": self.unrouted_labels,
            **extra,
        }
