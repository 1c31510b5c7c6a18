"""Pure functions: Debezium change events in, domain events and mirror writes out."""

from .changes import Change, Op, is_heartbeat, parse_change
from .mapping import (
    EVENT_ID_NAMESPACE,
    CardRef,
    Lookups,
    MirrorWrite,
    Outputs,
    Publication,
    event_id,
    map_change,
    mirror_doc,
)
from .pii import Pseudonymizer, scrub

__all__ = [
    "EVENT_ID_NAMESPACE",
    "CardRef",
    "Change",
    "Lookups",
    "MirrorWrite",
    "Op",
    "Outputs",
    "Pseudonymizer",
    "Publication",
    "event_id",
    "is_heartbeat",
    "map_change",
    "mirror_doc",
    "parse_change",
    "scrub",
]
