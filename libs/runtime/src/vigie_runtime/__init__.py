"""What every vigie service runs on.

- ``settings``: ``ServiceSettings`` from the environment, ``load_settings`` (clear error, exit 2).
- ``loop``: ``ConsumerLoop``, consume → decode → handle → write → commit, with retries, dead
  letters, backpressure, rebalance and graceful shutdown.
- ``commit_gate``: ``SinkGate``, commits no further than a sink (the lake) made durable.
- ``producer``: ``Producer`` (idempotent) and ``TransactionalProducer`` (exactly-once steps).
- ``dlq``: dead letters (``vigie-dlq list|replay``).
- ``logging`` / ``tracing`` / ``metrics`` / ``http``: the same observability in every service.
- ``service``: ``run_service``, the wiring of a service's ``main``.
- ``testing``: helpers for tests against a real cluster.
"""

from __future__ import annotations

from .backoff import Backoff
from .commit_gate import CommitGate, SinkGate
from .dlq import DeadLetter, DeadLetterPublisher
from .errors import (
    Backpressure,
    Classifier,
    ErrorKind,
    Fatal,
    Poison,
    Retryable,
    VigieRuntimeError,
    classify,
)
from .http import ReadinessCheck, create_app
from .logging import configure_logging, get_logger
from .loop import ConsumerLoop, Handler
from .messages import Decoder, Message, envelope_decoder, raw_decoder
from .metrics import Metrics
from .producer import Producer, TransactionalProducer
from .service import Runtime, Wiring, run, run_service
from .settings import KafkaSettings, ObservabilitySettings, ServiceSettings, load_settings
from .topics import partitions_of
from .tracing import configure_tracing, extract, inject

__all__ = [
    "Backoff",
    "Backpressure",
    "Classifier",
    "CommitGate",
    "ConsumerLoop",
    "DeadLetter",
    "DeadLetterPublisher",
    "Decoder",
    "ErrorKind",
    "Fatal",
    "Handler",
    "KafkaSettings",
    "Message",
    "Metrics",
    "ObservabilitySettings",
    "Poison",
    "Producer",
    "ReadinessCheck",
    "Retryable",
    "Runtime",
    "ServiceSettings",
    "SinkGate",
    "TransactionalProducer",
    "VigieRuntimeError",
    "Wiring",
    "classify",
    "configure_logging",
    "configure_tracing",
    "create_app",
    "envelope_decoder",
    "extract",
    "get_logger",
    "inject",
    "load_settings",
    "partitions_of",
    "raw_decoder",
    "run",
    "run_service",
]
