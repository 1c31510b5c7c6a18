"""vigie's Kafka topic contracts: what other teams build against.

- ``topics``: the catalogue (name, key, partitions, retention/compaction, owner, event types).
- ``events``: one pydantic model per event type, in the ``Envelope`` every message carries.
- ``serde``: Avro on the wire (single-object encoding, or Confluent framing with a registry).
- ``schemas``: the committed ``.avsc`` of every version; ``compat``: the check CI runs.
"""

from __future__ import annotations

from .errors import (
    ContractError,
    DecodeError,
    IncompatibleSchema,
    UnknownEventType,
    ValidationError,
)
from .events import EVENT_MODELS, Envelope, Event, model_for
from .serde import decode, encode
from .topics import CATALOGUE, Compatibility, Format, Topic, topic

__all__ = [
    "CATALOGUE",
    "EVENT_MODELS",
    "Compatibility",
    "ContractError",
    "DecodeError",
    "Envelope",
    "Event",
    "Format",
    "IncompatibleSchema",
    "Topic",
    "UnknownEventType",
    "ValidationError",
    "decode",
    "encode",
    "model_for",
    "topic",
]
