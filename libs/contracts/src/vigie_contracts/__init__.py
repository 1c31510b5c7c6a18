"""vigie's Kafka topic contracts: what other teams build against.

- ``topics``: the catalogue (name, key, partitions, retention/compaction, owner, event types).
- ``events``: one pydantic model per event type, in the ``Envelope`` every message carries.
- ``serde``: Avro on the wire (single-object encoding, or Confluent framing with a registry).
- ``schemas``: the committed ``.avsc`` of every version; ``compat``: the check CI runs.
- ``pseudonyms``: the one keyed pseudonym of personal data (e-mail, phone, IP...) every service
  computes, so pseudonyms join across topics and stores.
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
from .pseudonyms import Pseudonymizer, PseudonymKind
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
    "PseudonymKind",
    "Pseudonymizer",
    "Topic",
    "UnknownEventType",
    "ValidationError",
    "decode",
    "encode",
    "model_for",
    "topic",
]
