"""Prometheus metrics every service exposes on ``/metrics``, with the same names everywhere.

Each ``Metrics`` owns its registry (not the process-global one), so two loops in one test
process, or a service and its tests, never collide on registration.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

#: seconds; batches are fast when healthy and slow under retries
BATCH_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
#: seconds from event time to processing; alerting targets 1 s, CDC can lag minutes
LATENCY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600)


class Metrics:
    def __init__(self, service: str, registry: CollectorRegistry | None = None) -> None:
        self.service = service
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.consumed = Counter(
            "vigie_messages_consumed",
            "Records received from Kafka.",
            ["service", "topic"],
            registry=r,
        )
        self.processed = Counter(
            "vigie_messages_processed",
            "Records handled and committed.",
            ["service", "topic"],
            registry=r,
        )
        self.produced = Counter(
            "vigie_messages_produced",
            "Records acknowledged by Kafka.",
            ["service", "topic"],
            registry=r,
        )
        self.failed = Counter(
            "vigie_messages_failed",
            "Failed attempts (decode, validate, handle), by error class.",
            ["service", "topic", "error_type"],
            registry=r,
        )
        self.dead_lettered = Counter(
            "vigie_messages_dead_lettered",
            "Records sent to the dead-letter topic.",
            ["service", "topic", "error_type"],
            registry=r,
        )
        self.retries = Counter(
            "vigie_batch_retries",
            "Batch attempts that failed with a retryable error.",
            ["service"],
            registry=r,
        )
        self.batch_duration = Histogram(
            "vigie_batch_duration_seconds",
            "Decode + handle + commit of one batch.",
            ["service"],
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "vigie_batch_size",
            "Records per batch.",
            ["service"],
            buckets=(1, 10, 50, 100, 250, 500, 1000, 5000),
            registry=r,
        )
        self.event_latency = Histogram(
            "vigie_event_latency_seconds",
            "End-to-end latency: processing time minus the envelope's event time.",
            ["service", "topic"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.record_latency = Histogram(
            "vigie_record_latency_seconds",
            "This step's latency: processing done minus when Kafka appended the input record "
            "(meaningful in replays too, where event times are in the past).",
            ["service", "topic"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.lag = Gauge(
            "vigie_consumer_lag",
            "Records behind the partition's high watermark.",
            ["service", "topic", "partition"],
            registry=r,
        )
        self.paused = Gauge(
            "vigie_consumer_paused",
            "1 while the loop holds its partitions paused.",
            ["service"],
            registry=r,
        )

    def count_consumed(self, topic: str, n: int) -> None:
        self.consumed.labels(self.service, topic).inc(n)

    def count_processed(self, topic: str, n: int) -> None:
        self.processed.labels(self.service, topic).inc(n)

    def count_produced(self, topic: str, n: int = 1) -> None:
        self.produced.labels(self.service, topic).inc(n)

    def count_failed(self, topic: str, error_type: str, n: int = 1) -> None:
        self.failed.labels(self.service, topic, error_type).inc(n)

    def count_dead_lettered(self, topic: str, error_type: str) -> None:
        self.dead_lettered.labels(self.service, topic, error_type).inc()

    def observe_latencies(self, topic: str, seconds: Iterable[float]) -> None:
        child = self.event_latency.labels(self.service, topic)
        for value in seconds:
            child.observe(max(value, 0.0))  # clock skew between hosts must not go negative

    def observe_record_latencies(self, topic: str, seconds: Iterable[float]) -> None:
        child = self.record_latency.labels(self.service, topic)
        for value in seconds:
            child.observe(max(value, 0.0))

    def set_lag(self, topic: str, partition: int, lag: int) -> None:
        self.lag.labels(self.service, topic, str(partition)).set(max(lag, 0))

    def forget_partition(self, topic: str, partition: int) -> None:
        """A revoked partition's lag is another member's to report."""
        try:
            self.lag.remove(self.service, topic, str(partition))
        except KeyError:
            pass

    def value(self, name: str, labels: dict[str, str] | None = None) -> float:
        """A sample's current value (0 when absent), for tests and readiness checks."""
        found = self.registry.get_sample_value(name, labels or {})
        return found if found is not None else 0.0
