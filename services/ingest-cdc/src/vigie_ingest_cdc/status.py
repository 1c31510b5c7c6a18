"""What ``GET /status`` reports and the service's own Prometheus series."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Histogram

#: commit in PostgreSQL → done here; the brief's target is p99 < 3 s
_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30, 60, 300)


class CdcMetrics:
    def __init__(self, service: str, registry: CollectorRegistry) -> None:
        self.service = service
        self.to_event = Histogram(
            "vigie_cdc_commit_to_event_seconds",
            "OLTP commit → its domain events acknowledged by Kafka.",
            ["service", "table"],
            buckets=_BUCKETS,
            registry=registry,
        )
        self.to_mirror = Histogram(
            "vigie_cdc_commit_to_mirror_seconds",
            "OLTP commit → its mirror document written.",
            ["service", "table"],
            buckets=_BUCKETS,
            registry=registry,
        )


@dataclass
class Status:
    started_at: float = field(default_factory=time.time)
    changes: Counter[str] = field(default_factory=Counter)  # "<table>:<op>"
    events: Counter[str] = field(default_factory=Counter)  # event type
    dead_lettered: Counter[str] = field(default_factory=Counter)  # reason
    mirror_applied: int = 0
    mirror_stale: int = 0
    lake_files: int = 0
    tombstones: int = 0
    batches: int = 0
    #: time spent per stage of the batches, summed (where a slow service spends its time)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    last_lsn: int | None = None
    last_commit_ms: int | None = None
    last_batch_at: float | None = None
    unavailable_since: float | None = None
    last_unavailable_error: str | None = None

    def snapshot(self) -> dict[str, Any]:
        now = time.time()
        return {
            "uptime_s": round(now - self.started_at, 1),
            "batches": self.batches,
            "stage_seconds": {k: round(v, 3) for k, v in self.stage_seconds.items()},
            "changes": dict(sorted(self.changes.items())),
            "events_published": dict(sorted(self.events.items())),
            "dead_lettered": dict(sorted(self.dead_lettered.items())),
            "mirror": {"applied": self.mirror_applied, "stale": self.mirror_stale},
            "lake_files": self.lake_files,
            "tombstones_skipped": self.tombstones,
            "last_lsn": self.last_lsn,
            "last_commit_ms": self.last_commit_ms,
            # how far behind the OLTP database the last batch was
            "last_batch_delay_s": (
                None
                if self.last_commit_ms is None or self.last_batch_at is None
                else round(self.last_batch_at - self.last_commit_ms / 1000, 3)
            ),
            "waiting_for_dependency": self.unavailable_since is not None,
            "last_unavailable_error": self.last_unavailable_error,
        }
