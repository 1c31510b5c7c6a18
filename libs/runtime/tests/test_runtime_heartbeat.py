"""Heartbeats: settings from the service's prefix, best-effort sends, and run_service publishing
them on a real Kafka while it runs (and a last one saying it stops)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic_settings import SettingsConfigDict
from runtime_testkit import BOOTSTRAP, topics

from vigie_contracts import decode
from vigie_contracts.events import ServiceHeartbeat
from vigie_runtime import (
    KafkaSettings,
    ObservabilitySettings,
    Producer,
    Retryable,
    Runtime,
    ServiceSettings,
    Wiring,
    run_service,
)
from vigie_runtime.heartbeat import Heartbeat, HeartbeatSettings
from vigie_runtime.testing import collect


class BeatSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="VIGIE_BEATDEMO_")
    observability: ObservabilitySettings = ObservabilitySettings(service_name="beatdemo")


def test_heartbeat_settings_come_from_the_service_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIGIE_BEATDEMO_HEARTBEAT__INTERVAL_S", "0.5")
    monkeypatch.setenv("VIGIE_BEATDEMO_HEARTBEAT__INSTANCE", "pod-7")
    beat = HeartbeatSettings.of(BeatSettings())
    assert beat.interval_s == 0.5 and beat.instance_name() == "pod-7"
    assert beat.enabled and beat.topic == "ops.heartbeats"
    # the service's own settings ignore the heartbeat variables (extra="forbid" still holds)
    assert BeatSettings().service_name == "beatdemo"


def test_heartbeat_settings_reject_nonsense(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIGIE_BEATDEMO_HEARTBEAT__INTERVAL_S", "0")
    with pytest.raises(ValueError, match="interval_s"):
        HeartbeatSettings.of(BeatSettings())


class _Refusing:
    """A producer whose broker never acknowledges (or refuses)."""

    def __init__(self, hang: bool) -> None:
        self.hang = hang
        self.calls = 0

    async def send(self, *args: Any, **kwargs: Any) -> None:
        self.calls += 1
        if self.hang:
            await asyncio.Event().wait()
        raise Retryable("broker down")


@pytest.mark.parametrize("hang", [False, True])
async def test_a_heartbeat_kafka_does_not_take_is_skipped_not_raised(hang: bool) -> None:
    producer = _Refusing(hang)

    async def ready() -> bool:
        return True

    beat = Heartbeat(
        HeartbeatSettings(send_timeout_s=0.2),
        producer,  # type: ignore[arg-type]  # duck-typed stand-in
        service="beatdemo",
        ready=ready,
    )
    assert await beat.beat() is False
    assert producer.calls == 1 and beat.sent == 0


@pytest.mark.integration
async def test_run_service_publishes_heartbeats_then_a_stopping_one(unique: str) -> None:
    settings = ServiceSettings(
        kafka=KafkaSettings(bootstrap_servers=BOOTSTRAP, linger_ms=0),
        observability=ObservabilitySettings(service_name=f"beat-{unique}"),
    )
    async with topics() as factory:
        topic = await factory.create(f"test-heartbeats-{unique}")
        stop = asyncio.Event()

        async def wire(runtime: Runtime) -> Wiring:
            return Wiring()

        beats = HeartbeatSettings(interval_s=0.1, topic=topic.name, instance="i-1")
        task = asyncio.create_task(
            run_service(settings, wire, stop=stop, serve_http=False, heartbeat=beats)
        )
        running = await collect(BOOTSTRAP, topic.name, 3, timeout_s=20)
        stop.set()
        await asyncio.wait_for(task, 20)
        records = await collect(BOOTSTRAP, topic.name, 1000, timeout_s=2)

    assert len(running) == 3
    payloads = [decode(r.value).payload for r in records]
    assert all(isinstance(p, ServiceHeartbeat) for p in payloads)
    assert {r.key for r in records} == {f"beat-{unique}".encode()}
    first, last = payloads[0], payloads[-1]
    assert isinstance(first, ServiceHeartbeat) and isinstance(last, ServiceHeartbeat)
    assert first.service == f"beat-{unique}" and first.instance == "i-1"
    assert first.ready and first.details["state"] == "running"
    assert last.details["state"] == "stopping" and not last.ready
    sent = [p.sent_at for p in payloads if isinstance(p, ServiceHeartbeat)]
    assert sent == sorted(sent)


@pytest.mark.integration
async def test_disabled_heartbeat_sends_nothing(unique: str) -> None:
    settings = ServiceSettings(
        kafka=KafkaSettings(bootstrap_servers=BOOTSTRAP, linger_ms=0),
        observability=ObservabilitySettings(service_name=f"beat-{unique}"),
    )
    async with topics() as factory:
        topic = await factory.create(f"test-heartbeats-off-{unique}")
        stop = asyncio.Event()
        started = asyncio.Event()

        async def wire(runtime: Runtime) -> Wiring:
            started.set()
            return Wiring()

        beats = HeartbeatSettings(enabled=False, interval_s=0.05, topic=topic.name)
        task = asyncio.create_task(
            run_service(settings, wire, stop=stop, serve_http=False, heartbeat=beats)
        )
        await asyncio.wait_for(started.wait(), 20)
        # a canary through the same topic bounds the wait: heartbeats would precede it
        async with Producer(KafkaSettings(bootstrap_servers=BOOTSTRAP, linger_ms=0)) as canary:
            await asyncio.sleep(0.3)  # several intervals of the (disabled) heartbeat
            await canary.send_raw(topic.name, b"canary", key=b"c")
        stop.set()
        await asyncio.wait_for(task, 20)
        records = await collect(BOOTSTRAP, topic.name, 1000, timeout_s=2)
    assert [r.value for r in records] == [b"canary"]
