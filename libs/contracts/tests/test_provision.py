"""Provisioning against the real Kafka: creates what is missing, reports drift, deletes nothing."""

from __future__ import annotations

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from vigie_contracts.provision import provision
from vigie_contracts.topics import Topic
from vigie_localstack.settings import StackSettings

pytestmark = pytest.mark.integration


async def test_provision_is_idempotent_and_reports_drift(stack: StackSettings, unique: str) -> None:
    bootstrap = f"{stack.host}:{stack.kafka_port}"
    wanted = Topic(
        name=f"test.provision.{unique}", description="t", key="k", owner="tests", partitions=2
    )
    first = await provision(bootstrap, [wanted])
    assert first.created == [wanted.name]
    second = await provision(bootstrap, [wanted])
    assert second.created == [] and second.unchanged == [wanted.name]

    drifted = Topic(
        name=wanted.name, description="t", key="k", owner="tests", partitions=4, compacted=True,
        retention_ms=None,
    )
    third = await provision(bootstrap, [drifted])
    diffs = third.differences[wanted.name]
    assert any(d.startswith("partitions 2") for d in diffs)
    assert any(d.startswith("cleanup.policy=delete") for d in diffs)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics([wanted.name])
        assert len(described[0]["partitions"]) == 2  # reported, never changed
    finally:
        await admin.close()
