"""What every real-Kafka test of the runtime needs: the stack's address, topics, a producer."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager

from vigie_localstack.settings import StackSettings
from vigie_runtime import KafkaSettings, Producer
from vigie_runtime.testing import TopicFactory, topic_factory

STACK = StackSettings()
BOOTSTRAP = f"{STACK.host}:{STACK.kafka_port}"


def topics() -> AbstractAsyncContextManager[TopicFactory]:
    return topic_factory(BOOTSTRAP)


def producer() -> Producer:
    """Sends at once (no linger): tests wait on what they produce."""
    return Producer(KafkaSettings(bootstrap_servers=BOOTSTRAP, linger_ms=0))
