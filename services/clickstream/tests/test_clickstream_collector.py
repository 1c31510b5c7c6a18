"""The collector against the real broker: what it accepts reaches the raw topic (keyed by user,
IP pseudonymised) before it answers; what it refuses, it says why."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from vigie_clickstream.collector import Collector
from vigie_clickstream.settings import CollectorSettings, ValidationLimits
from vigie_contracts import Pseudonymizer, decode
from vigie_contracts.events import ClickstreamEvent
from vigie_localstack.settings import StackSettings
from vigie_runtime import KafkaSettings, Producer
from vigie_runtime.testing import collect, topic_factory

pytestmark = pytest.mark.integration

STACK = StackSettings()
BOOTSTRAP = f"{STACK.host}:{STACK.kafka_port}"
KEY = "k-shop-web"
IP_KEY = "test-ip-pseudonym-key-0123"


def event(i: int, **changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "event_id": f"ev-{i}",
        "user_id": f"user-{i % 3}",
        "platform": "web",
        "name": "page_view",
        "occurred_at": (datetime.now(UTC) - timedelta(seconds=1)).isoformat(),
        "page_url": f"https://shop.example/p/{i}",
        "properties": {"i": str(i)},
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not ...}


@pytest.fixture
async def collector(unique: str) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    settings = CollectorSettings(
        api_keys={"shop-web": SecretStr(KEY)},
        ip_hmac_key=SecretStr(IP_KEY),
        max_body_bytes=64_000,
        max_inflated_bytes=200_000,
        max_events_per_batch=100,
        rate_events_per_s=1,
        rate_burst_events=100,
    )
    async with topic_factory(BOOTSTRAP) as topics:
        raw = await topics.create(f"cs-raw-{unique}", partitions=3)
        async with Producer(KafkaSettings(bootstrap_servers=BOOTSTRAP, linger_ms=2)) as producer:
            app = FastAPI()
            Collector(settings, ValidationLimits(), producer, topic=raw.name).routes(app)
            transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 5555))
            async with httpx.AsyncClient(transport=transport, base_url="http://c") as client:
                yield client, raw.name


async def post(
    client: httpx.AsyncClient, body: Any, key: str = KEY, **headers: str
) -> httpx.Response:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    return await client.post(
        "/v1/batch", content=data, headers={"X-Api-Key": key, "User-Agent": "sdk/1", **headers}
    )


async def test_accepted_events_are_on_the_raw_topic_when_it_answers(
    collector: tuple[httpx.AsyncClient, str],
) -> None:
    client, topic = collector
    answer = await post(client, {"events": [event(i) for i in range(6)]})
    assert answer.status_code == 202, answer.text
    assert answer.json() == {"accepted": 6, "rejected": []}
    records = await collect(BOOTSTRAP, topic, 6, timeout_s=10)
    assert len(records) == 6
    for record in records:
        envelope = decode(record.value)
        payload = envelope.payload
        assert isinstance(payload, ClickstreamEvent)
        assert record.key == payload.user_id.encode()
        assert payload.app_id == "shop-web"  # from the key, not the body
        assert payload.user_agent == "sdk/1"
        # the shared pseudonym (the same one the logs and ingest-cdc compute), never the IP
        assert payload.ip_pseudonym == Pseudonymizer(IP_KEY.encode()).pseudonym("ip", "203.0.113.7")
        assert "203.0.113.7" not in record.value.decode("latin-1")
    # one user's events share a partition (keyed by user id)
    by_user: dict[bytes, set[int]] = {}
    for record in records:
        by_user.setdefault(record.key, set()).add(record.partition)
    assert all(len(parts) == 1 for parts in by_user.values())


async def test_rejections_say_why_and_the_rest_is_accepted(
    collector: tuple[httpx.AsyncClient, str],
) -> None:
    client, topic = collector
    far = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    batch = [
        event(0),
        event(1, user_id=...),
        event(2, name="teleport"),
        event(3, occurred_at=far),
        event(4, properties={"blob": "x" * 5000}),
        event(5, app_id="other-app"),
        "not an object",
        event(7, occurred_at="2026-01-01T10:00:00"),
    ]
    answer = await post(client, batch)
    assert answer.status_code == 202
    body = answer.json()
    assert body["accepted"] == 1
    reasons = {r["index"]: " ".join(r["reasons"]) for r in body["rejected"]}
    assert set(reasons) == {1, 2, 3, 4, 5, 6, 7}
    assert "user_id" in reasons[1]
    assert "name" in reasons[2]
    assert "future" in reasons[3]
    assert "properties" in reasons[4] and "bytes" in reasons[4]
    assert "set by the collector" in reasons[5]
    assert "timezone" in reasons[7]
    records = await collect(BOOTSTRAP, topic, 2, timeout_s=3)
    assert len(records) == 1


async def test_gzip_is_accepted(collector: tuple[httpx.AsyncClient, str]) -> None:
    client, _ = collector
    body = gzip.compress(orjson.dumps([event(i) for i in range(3)]))
    answer = await post(client, body, **{"Content-Encoding": "gzip"})
    assert answer.status_code == 202 and answer.json()["accepted"] == 3


async def test_bad_key_size_and_rate_are_refused(collector: tuple[httpx.AsyncClient, str]) -> None:
    client, _ = collector
    assert (await post(client, [event(0)], key="wrong")).status_code == 401
    assert (await client.post("/v1/batch", content=b"[]")).status_code == 401
    too_big = await post(client, [event(i, properties={"p": "x" * 900}) for i in range(80)])
    assert too_big.status_code == 413
    bomb = gzip.compress(b"[" + b" " * 500_000 + b"]")
    inflated = await post(client, bomb, **{"Content-Encoding": "gzip"})
    assert inflated.status_code == 413 and "inflates" in inflated.json()["error"]
    assert (await post(client, {"nope": 1})).status_code == 400
    assert (await post(client, b"{not json")).status_code == 400
    # burst of 100 events, then 1 event/s
    assert (await post(client, [event(i) for i in range(90)])).status_code == 202
    limited = await post(client, [event(i) for i in range(50)])
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) >= 1


def test_a_short_ip_key_is_refused_at_settings_time() -> None:
    with pytest.raises(ValueError, match="ip_hmac_key"):
        CollectorSettings(ip_hmac_key=SecretStr("short-key"))
