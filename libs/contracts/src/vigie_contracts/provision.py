"""Make a cluster match the catalogue: create what is missing, report what differs, never delete."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAlreadyExistsError

from .topics import CATALOGUE, Topic


@dataclass
class Report:
    created: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    #: topic → what differs between the catalogue and the cluster (left as it is)
    differences: dict[str, list[str]] = field(default_factory=dict)

    def lines(self) -> list[str]:
        out = [f"created {name}" for name in self.created]
        out += [f"ok      {name}" for name in self.unchanged]
        for name, diffs in self.differences.items():
            out += [f"DIFFERS {name}: {diff}" for diff in diffs]
        return out


async def provision(
    bootstrap: str, topics: Iterable[Topic] = CATALOGUE, replication_factor: int = 1
) -> Report:
    wanted = list(topics)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return await _provision(admin, wanted, replication_factor)
    finally:
        await admin.close()


async def _provision(admin: AIOKafkaAdminClient, wanted: list[Topic], rf: int) -> Report:
    report = Report()
    existing = set(await admin.list_topics())
    missing = [t for t in wanted if t.name not in existing]
    if missing:
        try:
            await admin.create_topics(
                [NewTopic(t.name, t.partitions, rf, topic_configs=t.config()) for t in missing]
            )
        except TopicAlreadyExistsError:
            pass  # another provisioner won the race: compared below like any existing topic
        report.created = [t.name for t in missing]
    present = [t for t in wanted if t.name in existing]
    if not present:
        return report
    described = {d["topic"]: d for d in await admin.describe_topics([t.name for t in present])}
    configs = await admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, t.name) for t in present]
    )
    actual: dict[str, dict[str, str]] = {}
    for response in configs:
        for resource in response.to_object()["resources"]:
            actual[resource["resource_name"]] = {
                entry["config_names"]: entry["config_value"]
                for entry in resource["config_entries"]
            }
    for t in present:
        diffs = []
        partitions = len(described[t.name]["partitions"])
        if partitions != t.partitions:
            diffs.append(f"partitions {partitions} (catalogue: {t.partitions})")
        for key, value in t.config().items():
            have = actual.get(t.name, {}).get(key)
            if have != value:
                diffs.append(f"{key}={have} (catalogue: {value})")
        if diffs:
            report.differences[t.name] = diffs
        else:
            report.unchanged.append(t.name)
    return report
