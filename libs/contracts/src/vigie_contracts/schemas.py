"""The committed schema files: ``schemas/<event_type>/v<N>.avsc``, one per published version.

A version, once published, is never edited: the golden test fails when a model changes without a
new version, and the compatibility check compares the newest version with every earlier one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import fastavro
from fastavro.schema import fingerprint, to_parsing_canonical_form

from .avro import AvroSchema, event_schema
from .errors import UnknownEventType
from .events import EVENT_MODELS

SCHEMA_DIR = Path(__file__).parent / "schemas"


@dataclass(frozen=True)
class SchemaVersion:
    event_type: str
    version: int
    schema: AvroSchema
    parsed: Any
    #: CRC-64-AVRO of the Parsing Canonical Form, as Avro single-object encoding writes it.
    fingerprint: bytes

    @property
    def subject(self) -> str:
        return f"{self.event_type}-v{self.version}"


def _load(event_type: str, version: int, schema: AvroSchema) -> SchemaVersion:
    parsed = fastavro.parse_schema(schema, _write_hint=False)
    canonical = to_parsing_canonical_form(schema)
    return SchemaVersion(
        event_type=event_type,
        version=version,
        schema=schema,
        parsed=parsed,
        fingerprint=bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO")),
    )


def path_of(event_type: str, version: int) -> Path:
    return SCHEMA_DIR / event_type / f"v{version}.avsc"


@cache
def versions(event_type: str) -> tuple[SchemaVersion, ...]:
    """Every committed version of an event type, oldest first."""
    folder = SCHEMA_DIR / event_type
    if event_type not in EVENT_MODELS or not folder.is_dir():
        raise UnknownEventType(f"no committed schema for {event_type!r}")
    found = sorted(folder.glob("v*.avsc"), key=lambda p: int(p.stem[1:]))
    return tuple(_load(event_type, int(p.stem[1:]), json.loads(p.read_text())) for p in found)


def current(event_type: str) -> SchemaVersion:
    """The version producers write: the model's ``SCHEMA_VERSION``."""
    model = EVENT_MODELS.get(event_type)
    if model is None:
        raise UnknownEventType(f"no event type {event_type!r}")
    for version in versions(event_type):
        if version.version == model.SCHEMA_VERSION:
            return version
    raise UnknownEventType(f"{event_type} v{model.SCHEMA_VERSION} is not committed")


@cache
def by_fingerprint() -> dict[bytes, SchemaVersion]:
    return {v.fingerprint: v for event_type in EVENT_MODELS for v in versions(event_type)}


def generated(event_type: str) -> AvroSchema:
    return event_schema(EVENT_MODELS[event_type])


def render(schema: AvroSchema) -> str:
    return json.dumps(schema, indent=2, sort_keys=False) + "\n"


def write_missing() -> list[Path]:
    """Commit-ready files for model versions not yet written; never overwrites one."""
    written = []
    for event_type, model in EVENT_MODELS.items():
        path = path_of(event_type, model.SCHEMA_VERSION)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(render(generated(event_type)))
            written.append(path)
    return written
