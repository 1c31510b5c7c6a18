"""Docs other teams read: an AsyncAPI 3.0 document of every topic, and one Markdown page per topic.

Generated from the catalogue and the committed schemas (``vigie-contracts docs``); a test
fails when the committed docs are stale.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from .schemas import current, path_of
from .topics import CATALOGUE, Format, Topic

DOCS_DIR = Path(__file__).resolve().parents[2] / "docs"


def _message_name(event_type: str) -> str:
    return "".join(part.capitalize() for part in event_type.split("_"))


def _channel_id(t: Topic) -> str:
    return t.name.replace(".", "_").replace("-", "_")


def _raw_payload(t: Topic) -> dict[str, Any]:
    if t.format is Format.DEBEZIUM_JSON:
        return {
            "type": "object",
            "description": "Debezium change-event envelope (JSON, schemas disabled): before, "
            "after, source (lsn, txId, ts_ms, snapshot), op (c, u, d, r, t), ts_ms.",
        }
    return {"type": "string", "format": "binary", "description": t.description}


def document() -> dict[str, Any]:
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for t in CATALOGUE:
        cid = _channel_id(t)
        channel_messages: dict[str, Any] = {}
        if t.event_types:
            for event_type in t.event_types:
                name = _message_name(event_type)
                version = current(event_type)
                schemas[name] = {
                    "schemaFormat": "application/vnd.apache.avro+json;version=1.9.0",
                    "schema": version.schema,
                }
                messages[name] = {
                    "name": event_type,
                    "title": f"{event_type} v{version.version}",
                    "contentType": "application/vnd.apache.avro",
                    "payload": {"$ref": f"#/components/schemas/{name}"},
                    "headers": {
                        "type": "object",
                        "properties": {
                            "traceparent": {"type": "string", "description": "W3C trace"},
                            "vigie.event_type": {"type": "string"},
                            "vigie.schema_version": {"type": "string"},
                        },
                    },
                }
                channel_messages[name] = {"$ref": f"#/components/messages/{name}"}
        else:
            name = _message_name(_channel_id(t))
            messages[name] = {"name": t.name, "payload": _raw_payload(t)}
            channel_messages[name] = {"$ref": f"#/components/messages/{name}"}
        channels[cid] = {
            "address": t.name,
            "description": t.description,
            "messages": channel_messages,
            "bindings": {
                "kafka": {
                    "topic": t.name,
                    "partitions": t.partitions,
                    "topicConfiguration": {
                        "cleanup.policy": ["compact"] if t.compacted else ["delete"],
                        "retention.ms": t.retention_ms if t.retention_ms is not None else -1,
                    },
                    "bindingVersion": "0.5.0",
                }
            },
            "x-vigie": {
                "owner": t.owner,
                "key": t.key,
                "compatibility": t.compatibility.value,
                "public": t.public,
                "format": t.format.value,
            },
        }
        operations[f"publish_{cid}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{cid}"},
            "summary": f"{t.owner} publishes to {t.name}",
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "vigie topics",
            "version": "1.0.0",
            "description": "Every Kafka topic of vigie: key, layout, retention, owner, schema. "
            "Avro values use single-object encoding (C3 01 + CRC-64-AVRO fingerprint), or the "
            "Confluent wire format when a schema registry is configured.",
        },
        "servers": {
            "local": {"host": "127.0.0.1:9092", "protocol": "kafka", "description": "./vigie up"}
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }


def topic_page(t: Topic) -> str:
    lines = [
        f"# `{t.name}`",
        "",
        t.description,
        "",
        "| | |",
        "|---|---|",
        f"| owner | {t.owner} |",
        f"| key | {t.key} |",
        f"| partitions | {t.partitions} |",
        f"| cleanup | {'compact' if t.compacted else 'delete'} |",
        f"| retention | {_retention(t)} |",
        f"| format | {t.format.value} |",
        f"| compatibility | {t.compatibility.value}{' (public topic)' if t.public else ''} |",
        "",
    ]
    for event_type in t.event_types:
        version = current(event_type)
        rel = path_of(event_type, version.version).relative_to(DOCS_DIR.parent)
        lines += [f"## `{event_type}` v{version.version}", ""]
        lines += [f"Schema: `libs/contracts/{rel}`", ""]
        lines += ["| field | type | |", "|---|---|---|"]
        payload = next(f for f in version.schema["fields"] if f["name"] == "payload")["type"]
        for f in payload["fields"]:
            default = f"default `{json.dumps(f['default'])}`" if "default" in f else "required"
            required = default
            doc = f" — {f['doc']}" if "doc" in f else ""
            lines.append(f"| `{f['name']}` | `{_type_name(f['type'])}` | {required}{doc} |")
        lines.append("")
    return "\n".join(lines)


def _retention(t: Topic) -> str:
    if t.retention_ms is None:
        return "forever (compacted)"
    return f"{t.retention_ms // 86_400_000} days"


def _type_name(avro_type: Any) -> str:
    if isinstance(avro_type, list):
        return " | ".join(_type_name(x) for x in avro_type)
    if isinstance(avro_type, dict):
        if "logicalType" in avro_type:
            return str(avro_type["logicalType"])
        if avro_type["type"] == "array":
            return f"array<{_type_name(avro_type['items'])}>"
        if avro_type["type"] == "map":
            return f"map<{_type_name(avro_type['values'])}>"
        return str(avro_type.get("name", avro_type["type"]))
    return str(avro_type)


def rendered() -> dict[Path, str]:
    """Every generated file and its content."""
    files = {DOCS_DIR / "asyncapi.yaml": yaml.safe_dump(document(), sort_keys=False, width=100)}
    index = ["# vigie topics", "", "| topic | owner | key | event types |", "|---|---|---|---|"]
    for t in CATALOGUE:
        files[DOCS_DIR / "topics" / f"{t.name}.md"] = topic_page(t)
        events = ", ".join(t.event_types) or t.format.value
        index.append(f"| [`{t.name}`](topics/{t.name}.md) | {t.owner} | {t.key} | {events} |")
    files[DOCS_DIR / "README.md"] = "\n".join(index) + "\n"
    return files


def write() -> list[Path]:
    out = []
    for path, content in rendered().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        out.append(path)
    return out
