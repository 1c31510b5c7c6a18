"""The whole service against the real stack: collector → raw topic → pipeline → Cassandra, the
query API, duplicates stored once, sessions (an abandoned checkout), dead letters, and sessions
that go on across a restart (state in Redis), and commits that never run ahead of the lake (an
offset is committed once its raw record is in a final Parquet file)."""

from __future__ import annotations

import asyncio
import socket
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from pydantic import SecretStr

from vigie_clickstream.app import wire
from vigie_clickstream.settings import (
    ClickstreamSettings,
    CollectorSettings,
    PipelineSettings,
    SessionSettings,
    TopicNames,
)
from vigie_contracts import decode
from vigie_contracts.events import ClickstreamEvent, SessionSummary
from vigie_localstack.settings import StackSettings
from vigie_runtime import KafkaSettings, ObservabilitySettings, Producer
from vigie_runtime.testing import (
    TopicFactory,
    collect,
    committed,
    eventually,
    serving,
    topic_factory,
)
from vigie_stores.cassandra import CassandraConfig, CassandraStore
from vigie_stores.lake import LakeConfig
from vigie_stores.redis import RedisConfig, RedisStore

pytestmark = pytest.mark.integration

STACK = StackSettings()
BOOTSTRAP = f"{STACK.host}:{STACK.kafka_port}"
KEY = "k-e2e"
UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def settings_of(unique: str, port: int, lake: Path) -> ClickstreamSettings:
    return ClickstreamSettings(
        kafka=KafkaSettings(bootstrap_servers=BOOTSTRAP, linger_ms=1, batch_timeout_ms=50),
        observability=ObservabilitySettings(
            service_name=f"cs-{unique}", http_host="127.0.0.1", http_port=port
        ),
        collector=CollectorSettings(api_keys={"shop": SecretStr(KEY)}),
        pipeline=PipelineSettings(keyspace=f"cs_{unique}"),
        sessions=SessionSettings(
            inactivity_gap=timedelta(minutes=1),
            allowed_lateness=timedelta(0),
            redis_prefix=f"test:{unique}",
        ),
        topics=TopicNames(
            raw=f"cs-raw-{unique}", events=f"cs-events-{unique}", sessions=f"cs-sess-{unique}"
        ),
        cassandra=CassandraConfig(port=STACK.cassandra_port, consistency="ONE"),
        redis=RedisConfig(url=SecretStr(f"redis://{STACK.host}:{STACK.redis_port}/0")),
        lake=LakeConfig(url=str(lake), max_file_age=timedelta(seconds=1)),
    )


def service(settings: ClickstreamSettings) -> AbstractAsyncContextManager[httpx.AsyncClient]:
    return serving(settings, wire)


async def provision(topics: TopicFactory, s: ClickstreamSettings) -> None:
    for name in (s.topics.raw, s.topics.events, s.topics.sessions, f"dlq.{s.service_name}"):
        await topics.create(name, partitions=1)


def click(eid: str, user: str, name: str, at: datetime, **extra: Any) -> dict[str, Any]:
    return {
        "event_id": eid,
        "user_id": user,
        "platform": "ios",
        "name": name,
        "occurred_at": at.isoformat(),
        **extra,
    }


async def test_batch_is_stored_deduplicated_sessionised_and_queryable(
    unique: str, tmp_path: Path
) -> None:
    s = settings_of(unique, free_port(), tmp_path / "lake")
    now = datetime.now(UTC)
    t0 = now - timedelta(minutes=10)
    abandon, buyer = f"a-{unique}", f"b-{unique}"
    batch = [
        click("e1", abandon, "page_view", t0, page_url="https://s/1", user_agent=UA),
        click("e2", abandon, "add_to_cart", t0 + timedelta(seconds=10)),
        click("e3", abandon, "checkout_started", t0 + timedelta(seconds=20)),
        click("e4", buyer, "page_view", t0),
        click("e5", buyer, "checkout_started", t0 + timedelta(seconds=5)),
        click("e6", buyer, "purchase", t0 + timedelta(seconds=9)),
    ]
    async with topic_factory(BOOTSTRAP) as topics:
        await provision(topics, s)
        cassandra = await CassandraStore.open(s.cassandra)
        try:
            async with service(s) as api:
                headers = {"X-Api-Key": KEY}
                first = await api.post("/v1/batch", content=orjson.dumps(batch), headers=headers)
                assert first.status_code == 202 and first.json()["accepted"] == 6
                # the SDK retries the same batch: the same event ids must be stored once
                again = await api.post("/v1/batch", content=orjson.dumps(batch), headers=headers)
                assert again.json()["accepted"] == 6
                # a Kafka producer sends garbage straight to the raw topic: dead-lettered
                async with Producer(KafkaSettings(bootstrap_servers=BOOTSTRAP)) as raw:
                    await raw.send_raw(s.topics.raw, b"\x00garbage", key=b"x")

                async def stored() -> list[dict[str, Any]]:
                    answer = await api.get(
                        f"/users/{abandon}/events",
                        params={"from": (t0 - timedelta(hours=1)).isoformat()},
                    )
                    assert answer.status_code == 200, answer.text
                    events: list[dict[str, Any]] = answer.json()["events"]
                    return events

                async def all_stored() -> bool:
                    return len(await stored()) == 3

                await eventually(all_stored, timeout_s=30)
                events = await stored()
                assert [e["event_id"] for e in events] == ["e1", "e2", "e3"]
                assert events[0]["device_family"] == "iPhone"
                assert events[0]["os_family"] == "iOS"
                assert events[0]["app_id"] == "shop"
                assert events[0]["ip_pseudonym"] and events[0]["ip_pseudonym"] != "127.0.0.1"

                # a later event of another user moves the watermark: both sessions close
                later = [click("e7", f"c-{unique}", "page_view", now)]
                await api.post("/v1/batch", content=orjson.dumps(later), headers=headers)

                async def sessions_of(user: str) -> list[dict[str, Any]]:
                    found: list[dict[str, Any]] = (await api.get(f"/users/{user}/sessions")).json()[
                        "sessions"
                    ]
                    return found

                async def both_closed() -> bool:
                    return bool(await sessions_of(abandon)) and bool(await sessions_of(buyer))

                await eventually(both_closed, timeout_s=30)
                (sa,) = await sessions_of(abandon)
                (sb,) = await sessions_of(buyer)
                assert sa["checkout_abandoned"] is True and sa["converted"] is False
                assert sa["event_count"] == 3 and sa["page_views"] == 1
                assert sa["device_family"] == "iPhone"
                assert sb["converted"] is True and sb["checkout_abandoned"] is False

            # straight from Cassandra: each event once, despite the retried batch
            rows = await cassandra.execute(
                f"SELECT event_id FROM {s.pipeline.keyspace}.clickstream_events "  # noqa: S608
                "WHERE user_id = ? AND day = ?",
                (abandon, t0.date()),
            )
            assert sorted(r["event_id"] for r in rows) == ["e1", "e2", "e3"]
            enriched = await collect(BOOTSTRAP, s.topics.events, 7, timeout_s=10)
            assert {decode(r.value).event_id for r in enriched} == {f"e{i}" for i in range(1, 8)}
            payload = decode(enriched[0].value).payload
            assert isinstance(payload, ClickstreamEvent)
            summaries = await collect(BOOTSTRAP, s.topics.sessions, 2, timeout_s=10)
            by_user = {
                p.user_id: p
                for p in (decode(r.value).payload for r in summaries)
                if isinstance(p, SessionSummary)
            }
            assert by_user[abandon].checkout_abandoned and by_user[buyer].converted
            dead = await collect(BOOTSTRAP, f"dlq.{s.service_name}", 1, timeout_s=10)
            assert len(dead) == 1 and dead[0].value == b"\x00garbage"
            # the raw zone got the raw records (files completed at shutdown)
            assert list((tmp_path / "lake").glob(f"topic={s.topics.raw}/date=*/hour=*/*.parquet"))
        finally:
            await cassandra.drop_keyspace(s.pipeline.keyspace)
            await cassandra.close()
            redis = await RedisStore.open(s.redis)
            keys = await redis.client.keys(f"test:{unique}:*")
            if keys:
                await redis.client.delete(*keys)
            await redis.close()


async def test_open_sessions_survive_a_restart(unique: str, tmp_path: Path) -> None:
    s = settings_of(unique, free_port(), tmp_path / "lake")
    now = datetime.now(UTC)
    t0 = now - timedelta(minutes=10)
    user = f"r-{unique}"
    async with topic_factory(BOOTSTRAP) as topics:
        await provision(topics, s)
        cassandra = await CassandraStore.open(s.cassandra)
        try:
            headers = {"X-Api-Key": KEY}
            async with service(s) as api:
                first = [click("r1", user, "checkout_started", t0)]
                await api.post("/v1/batch", content=orjson.dumps(first), headers=headers)

                async def stored() -> bool:
                    r = await api.get(
                        f"/users/{user}/events",
                        params={"from": (t0 - timedelta(hours=1)).isoformat()},
                    )
                    return len(r.json()["events"]) == 1

                await eventually(stored, timeout_s=30)
            # a new process: the open session (in Redis) goes on and the purchase converts it
            async with service(s) as api:
                rest = [
                    click("r2", user, "purchase", t0 + timedelta(seconds=30)),
                    click("r3", f"other-{unique}", "page_view", now),
                ]
                await api.post("/v1/batch", content=orjson.dumps(rest), headers=headers)

                async def closed() -> bool:
                    return bool((await api.get(f"/users/{user}/sessions")).json()["sessions"])

                await eventually(closed, timeout_s=30)
                (session,) = (await api.get(f"/users/{user}/sessions")).json()["sessions"]
                assert session["event_count"] == 2
                assert session["converted"] is True and session["checkout_abandoned"] is False
        finally:
            await cassandra.drop_keyspace(s.pipeline.keyspace)
            await cassandra.close()
            redis = await RedisStore.open(s.redis)
            keys = await redis.client.keys(f"test:{unique}:*")
            if keys:
                await redis.client.delete(*keys)
            await redis.close()


def final_ranges(lake: Path, topic: str) -> list[tuple[int, int]]:
    """(first, last) offsets of the final files (``<topic>+<partition>+<first>+<last>``)."""
    found = []
    for path in lake.glob(f"topic={topic}/date=*/hour=*/*.parquet"):
        _, _, first, last = path.stem.rsplit("+", 3)
        found.append((int(first), int(last)))
    return sorted(found)


def with_lake_age(s: ClickstreamSettings, lake: Path, age: timedelta) -> ClickstreamSettings:
    return s.model_copy(update={"lake": LakeConfig(url=str(lake), max_file_age=age)})


async def test_commits_wait_for_the_lake_files_to_be_final(unique: str, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    base = settings_of(unique, free_port(), lake)
    t0 = datetime.now(UTC) - timedelta(minutes=5)
    user = f"l-{unique}"
    headers = {"X-Api-Key": KEY}

    async def offsets() -> list[int]:
        return await committed(BOOTSTRAP, base.group_id, base.topics.raw)

    async with topic_factory(BOOTSTRAP) as topics:
        await provision(topics, base)
        cassandra = await CassandraStore.open(base.cassandra)
        try:
            # files that never roll by age while the service runs: nothing is committed
            s = with_lake_age(base, lake, timedelta(hours=1))
            async with service(s) as api:
                batch = [
                    click(f"x{i}", user, "page_view", t0 + timedelta(seconds=i)) for i in range(3)
                ]
                r = await api.post("/v1/batch", content=orjson.dumps(batch), headers=headers)
                assert r.status_code == 202

                async def stored() -> bool:
                    got = await api.get(
                        f"/users/{user}/events",
                        params={"from": (t0 - timedelta(hours=1)).isoformat()},
                    )
                    return len(got.json()["events"]) == 3

                await eventually(stored, timeout_s=30)
                await asyncio.sleep(1.5)  # several idle polls: the gate is asked again
                # handled and stored in Cassandra, but the lake file is still open
                assert final_ranges(lake, s.topics.raw) == []
                assert await offsets() == [-1]
            # stopping completed the file first, then committed everything in it
            assert final_ranges(lake, s.topics.raw) == [(0, 2)]
            assert await offsets() == [3]

            # files rolling after 1 s: the commit follows the roll while the service runs
            s = with_lake_age(base, lake, timedelta(seconds=1))
            async with service(s) as api:
                more = [
                    click(f"y{i}", user, "page_view", t0 + timedelta(seconds=9)) for i in range(2)
                ]
                await api.post("/v1/batch", content=orjson.dumps(more), headers=headers)

                async def caught_up() -> bool:
                    return await offsets() == [5]

                await eventually(caught_up, timeout_s=30)
                # never ahead: whatever is committed is in a final file
                assert final_ranges(lake, s.topics.raw) == [(0, 2), (3, 4)]
        finally:
            await cassandra.drop_keyspace(base.pipeline.keyspace)
            await cassandra.close()
            redis = await RedisStore.open(base.redis)
            keys = await redis.client.keys(f"test:{unique}:*")
            if keys:
                await redis.client.delete(*keys)
            await redis.close()
