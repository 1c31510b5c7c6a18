"""What a client needs to know of a topic before it reads it: its partitions."""

from __future__ import annotations

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from .producer import translate
from .settings import KafkaSettings


async def partitions_of(settings: KafkaSettings, topic: str) -> list[int]:
    """The topic's partitions; none if it does not exist (describing a missing topic would
    auto-create it on brokers that allow that, so it is listed first)."""
    admin = AIOKafkaAdminClient(**settings.client_options())
    try:
        await admin.start()
        try:
            if topic not in await admin.list_topics():
                return []
            described = await admin.describe_topics([topic])
        finally:
            await admin.close()
    except KafkaError as exc:
        raise translate(exc) from exc
    return sorted(
        p["partition"] for d in described if d["error_code"] == 0 for p in d["partitions"]
    )
