"""The topic catalogue: every Kafka topic of vigie, its key, layout, retention, owner and schema.

This is the contract other teams build against. A topic is a frozen descriptor, never a string
scattered through code: services import ``TRANSACTIONS`` and use ``TRANSACTIONS.name``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

DAY_MS = 24 * 3600 * 1000


class Compatibility(StrEnum):
    """How a schema may evolve (the Confluent modes; checked in CI against every earlier version).

    BACKWARD: consumers on the new schema read data written with any older one.
    FULL: also the other way round — for public topics, whose consumers upgrade on their own time.
    """

    BACKWARD = "BACKWARD"
    FORWARD = "FORWARD"
    FULL = "FULL"


class Format(StrEnum):
    AVRO = "avro"  # vigie events (see serde)
    DEBEZIUM_JSON = "debezium-json"  # Debezium change-event envelopes, schemas disabled
    RAW = "raw"  # bytes as a shipper or SDK sent them (JSON, logfmt, text lines)


@dataclass(frozen=True)
class Topic:
    name: str
    description: str
    key: str
    owner: str
    event_types: tuple[str, ...] = ()
    format: Format = Format.AVRO
    partitions: int = 6
    retention_ms: int | None = 7 * DAY_MS
    compacted: bool = False
    compatibility: Compatibility = Compatibility.BACKWARD
    public: bool = False
    extra_config: dict[str, str] = field(default_factory=dict)

    def config(self) -> dict[str, str]:
        """The topic-level Kafka configuration this descriptor implies."""
        cfg = {"cleanup.policy": "compact" if self.compacted else "delete"}
        cfg["retention.ms"] = str(self.retention_ms if self.retention_ms is not None else -1)
        if self.compacted:
            cfg["min.compaction.lag.ms"] = str(60_000)
        return {**cfg, **self.extra_config}


def _cdc(table: str) -> Topic:
    return Topic(
        name=f"cdc.public.{table}",
        description=f"Debezium change events of the OLTP table `{table}` (create, update, delete "
        "with tombstone, snapshot read, truncate).",
        key="the row's primary key, as Debezium's JSON key ({\"id\": ...})",
        owner="kafka-connect (Debezium)",
        format=Format.DEBEZIUM_JSON,
        # keyed by primary key: one row's changes stay in commit order on any partition count
        partitions=3,
        retention_ms=7 * DAY_MS,
    )


CDC_TABLES = ("customers", "merchants", "terminals", "cards", "transactions", "refunds", "disputes")
CDC_TOPICS = tuple(_cdc(table) for table in CDC_TABLES)

TRANSACTIONS = Topic(
    name="payments.transactions",
    description="Payments as they are attempted and change status.",
    key="customer_id (one customer's payments stay in order)",
    owner="ingest-cdc",
    event_types=("transaction_created", "transaction_status_changed"),
    partitions=12,
    retention_ms=30 * DAY_MS,
    compatibility=Compatibility.FULL,
    public=True,
)
REFUNDS = Topic(
    name="payments.refunds",
    description="Refunds of payments.",
    key="customer_id when known, else transaction_id",
    owner="ingest-cdc",
    event_types=("refund_created",),
    retention_ms=30 * DAY_MS,
    compatibility=Compatibility.FULL,
    public=True,
)
DISPUTES = Topic(
    name="payments.disputes",
    description="Disputes and chargebacks opened and resolved; a fraud dispute is a fraud label.",
    key="customer_id when known, else transaction_id",
    owner="ingest-cdc",
    event_types=("dispute_opened", "dispute_resolved"),
    retention_ms=90 * DAY_MS,
    compatibility=Compatibility.FULL,
    public=True,
)
CUSTOMERS = Topic(
    name="payments.customers",
    description="The current state of every customer (PII pseudonymised), compacted.",
    key="customer_id",
    owner="ingest-cdc",
    event_types=("customer_upserted",),
    retention_ms=None,
    compacted=True,
    compatibility=Compatibility.FULL,
    public=True,
)
MERCHANTS = Topic(
    name="payments.merchants",
    description="The current state of every merchant, compacted.",
    key="merchant_id",
    owner="ingest-cdc",
    event_types=("merchant_upserted",),
    retention_ms=None,
    compacted=True,
    compatibility=Compatibility.FULL,
    public=True,
)
TERMINALS = Topic(
    name="payments.terminals",
    description="The current state of every terminal, compacted.",
    key="terminal_id",
    owner="ingest-cdc",
    event_types=("terminal_upserted",),
    retention_ms=None,
    compacted=True,
    compatibility=Compatibility.FULL,
    public=True,
)
CARDS = Topic(
    name="payments.cards",
    description="The current state of every card: token, BIN and last four only, compacted.",
    key="card_id",
    owner="ingest-cdc",
    event_types=("card_upserted",),
    retention_ms=None,
    compacted=True,
    compatibility=Compatibility.FULL,
    public=True,
)
CLICKSTREAM_RAW = Topic(
    name="clickstream.raw",
    description="App and web events as SDKs and the collector send them, before validation.",
    key="user_id",
    owner="clickstream",
    event_types=("clickstream_event",),
    partitions=12,
    retention_ms=3 * DAY_MS,
)
CLICKSTREAM_EVENTS = Topic(
    name="clickstream.events",
    description="Validated, deduplicated and enriched clickstream events.",
    key="user_id",
    owner="clickstream",
    event_types=("clickstream_event",),
    partitions=12,
    retention_ms=7 * DAY_MS,
)
CLICKSTREAM_SESSIONS = Topic(
    name="clickstream.sessions",
    description="One summary per closed user session (30 min of inactivity by default).",
    key="user_id",
    owner="clickstream",
    event_types=("session_summary",),
    retention_ms=30 * DAY_MS,
)
LOGS_RAW = Topic(
    name="logs.raw",
    description="Log records of the microservices as a shipper (Fluent Bit, Vector) sends them: "
    "JSON, logfmt or plain text, one record per message.",
    key="the emitting service's name (may be empty)",
    owner="logs",
    format=Format.RAW,
    partitions=6,
    retention_ms=3 * DAY_MS,
)
SECURITY_EVENTS = Topic(
    name="logs.security",
    description="Authentication, authorization and audit events found in the logs, redacted.",
    key="account, else the source IP's pseudonym",
    owner="logs",
    event_types=("security_event",),
    retention_ms=90 * DAY_MS,
)
FEATURE_UPDATES = Topic(
    name="features.updates",
    description="Every change of a feature view of an entity, compacted by entity and view.",
    key="<entity_type>:<entity_id>:<view>",
    owner="features",
    event_types=("feature_vector_updated",),
    partitions=12,
    retention_ms=None,
    compacted=True,
)
FRAUD_SCORES = Topic(
    name="fraud.scores",
    description="The fraud score and decision of every transaction.",
    key="customer_id",
    owner="inference",
    event_types=("fraud_score",),
    partitions=12,
    retention_ms=30 * DAY_MS,
    compatibility=Compatibility.FULL,
    public=True,
)
FRAUD_DECISIONS = Topic(
    name="fraud.decisions",
    description="Decisions for the OLTP side to apply to the transaction's real-time status.",
    key="transaction_id",
    owner="inference",
    event_types=("fraud_decision",),
    retention_ms=30 * DAY_MS,
    compatibility=Compatibility.FULL,
    public=True,
)
FRAUD_LABELS = Topic(
    name="fraud.labels",
    description="Truth about transactions (disputes, chargebacks, analyst verdicts), for learning. "
    "One partition: the models learn the labels in one total order, so a restart from a "
    "checkpoint (model state + offset) neither relearns nor skips one.",
    key="transaction_id",
    owner="inference",
    event_types=("fraud_label",),
    partitions=1,
    retention_ms=180 * DAY_MS,
    compatibility=Compatibility.FULL,
    public=True,
)
MODEL_DRIFT = Topic(
    name="fraud.drift",
    description="Drift signals of the fraud models' inputs and performance.",
    key="model_name",
    owner="inference",
    event_types=("drift_signal",),
    partitions=1,
    retention_ms=30 * DAY_MS,
)
ALERTS = Topic(
    name="alerts",
    description="Alerts: fraud, security, pipeline health and model drift, one per incident.",
    key="fingerprint",
    owner="alerting",
    event_types=("alert",),
    partitions=3,
    retention_ms=90 * DAY_MS,
    compatibility=Compatibility.FULL,
    public=True,
)
HEARTBEATS = Topic(
    name="ops.heartbeats",
    description="Every service instance's heartbeat, for pipeline-health alerting.",
    key="service",
    owner="runtime (every service)",
    event_types=("service_heartbeat",),
    partitions=1,
    retention_ms=1 * DAY_MS,
)

SERVICES = ("ingest-cdc", "clickstream", "logs", "features", "inference", "alerting")


def dead_letter(service: str) -> Topic:
    """The dead-letter topic of one service: original key and bytes, the error in headers."""
    return Topic(
        name=f"dlq.{service}",
        description=f"Messages {service} could not decode, validate or write after retries. "
        "Headers: vigie.dlq.error, .error_type, .topic, .partition, .offset, .timestamp, "
        ".service; replay with `vigie-dlq replay`.",
        key="the original message's key",
        owner=service,
        format=Format.RAW,
        partitions=1,
        retention_ms=30 * DAY_MS,
    )


DEAD_LETTERS = tuple(dead_letter(service) for service in SERVICES)

CATALOGUE: tuple[Topic, ...] = (
    *CDC_TOPICS,
    TRANSACTIONS,
    REFUNDS,
    DISPUTES,
    CUSTOMERS,
    MERCHANTS,
    TERMINALS,
    CARDS,
    CLICKSTREAM_RAW,
    CLICKSTREAM_EVENTS,
    CLICKSTREAM_SESSIONS,
    LOGS_RAW,
    SECURITY_EVENTS,
    FEATURE_UPDATES,
    FRAUD_SCORES,
    FRAUD_DECISIONS,
    FRAUD_LABELS,
    MODEL_DRIFT,
    ALERTS,
    HEARTBEATS,
    *DEAD_LETTERS,
)


def topic(name: str) -> Topic:
    for candidate in CATALOGUE:
        if candidate.name == name:
            return candidate
    raise KeyError(f"no topic {name!r} in the catalogue")


def compatibility_of(event_type: str) -> Compatibility:
    """The strictest mode among the topics that carry an event type."""
    modes = {t.compatibility for t in CATALOGUE if event_type in t.event_types}
    if Compatibility.FULL in modes or {Compatibility.BACKWARD, Compatibility.FORWARD} <= modes:
        return Compatibility.FULL
    if Compatibility.FORWARD in modes:
        return Compatibility.FORWARD
    return Compatibility.BACKWARD
