"""The compatibility check CI runs: every event type's newest schema against all its earlier ones.

The rules are Avro's schema resolution, applied by Apache Avro's own checker; the mode of each
event type comes from its topics (FULL for public topics, BACKWARD otherwise).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import avro.schema
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

from .avro import AvroSchema
from .events import EVENT_MODELS
from .schemas import SchemaVersion, versions
from .topics import Compatibility, compatibility_of


@dataclass(frozen=True)
class Problem:
    event_type: str
    new_version: int
    old_version: int
    direction: str  # "new reads old" (backward) or "old reads new" (forward)
    detail: str

    def __str__(self) -> str:
        return (
            f"{self.event_type} v{self.new_version} vs v{self.old_version} "
            f"({self.direction}): {self.detail}"
        )


def _explain(reader: AvroSchema, writer: AvroSchema) -> str | None:
    checker = ReaderWriterCompatibilityChecker()  # type: ignore[no-untyped-call]  # avro is untyped
    result = checker.get_compatibility(
        avro.schema.parse(json.dumps(reader)), avro.schema.parse(json.dumps(writer))
    )
    if result.compatibility is SchemaCompatibilityType.compatible:
        return None
    kinds = ", ".join(sorted(kind.value for kind in result.incompatibilities))
    fields = ", ".join(sorted(str(m) for m in result.messages))
    where = ", ".join(sorted(str(loc) for loc in result.locations))
    return f"{kinds} — field(s) {fields} at {where}"


def check_pair(
    event_type: str, new: SchemaVersion | AvroSchema, old: SchemaVersion, mode: Compatibility
) -> list[Problem]:
    new_schema = new.schema if isinstance(new, SchemaVersion) else new
    new_version = new.version if isinstance(new, SchemaVersion) else old.version + 1
    problems = []
    if mode in (Compatibility.BACKWARD, Compatibility.FULL):
        why = _explain(reader=new_schema, writer=old.schema)
        if why:
            problems.append(Problem(event_type, new_version, old.version, "new reads old", why))
    if mode in (Compatibility.FORWARD, Compatibility.FULL):
        why = _explain(reader=old.schema, writer=new_schema)
        if why:
            problems.append(Problem(event_type, new_version, old.version, "old reads new", why))
    return problems


def check_all() -> list[Problem]:
    problems: list[Problem] = []
    for event_type in EVENT_MODELS:
        history = versions(event_type)
        newest = history[-1]
        for old in history[:-1]:
            problems += check_pair(event_type, newest, old, compatibility_of(event_type))
    return problems
