"""A consuming service for the crash test, run as a subprocess: writes every event into Redis
with an idempotent upsert keyed by event id, through ``run_service`` (settings from the
environment, signals, HTTP probes, ordered shutdown)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import cast

import redis.asyncio as redis
from pydantic_settings import SettingsConfigDict
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from vigie_contracts import Envelope, Event
from vigie_runtime import (
    ErrorKind,
    Message,
    Runtime,
    ServiceSettings,
    Wiring,
    classify,
    load_settings,
    run_service,
)


class WorkerSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="VIGIE_WORKER_")
    redis_url: str = "redis://127.0.0.1:6379/0"
    topic: str
    key_prefix: str
    #: seconds between the write and the commit: widens the window a kill lands in
    delay_s: float = 0.0


def classifier(exc: BaseException) -> ErrorKind:
    # the store's transient errors are translated here, at the boundary
    if isinstance(exc, RedisConnectionError | RedisTimeoutError):
        return ErrorKind.RETRY
    return classify(exc)


async def wire(runtime: Runtime) -> Wiring:
    settings = cast(WorkerSettings, runtime.settings)
    client = redis.Redis.from_url(settings.redis_url)
    runtime.stack.push_async_callback(client.aclose)
    events, writes = f"{settings.key_prefix}:events", f"{settings.key_prefix}:writes"

    async def handler(batch: Sequence[Message[Envelope[Event]]]) -> None:
        pipe = client.pipeline(transaction=False)
        for message in batch:
            pipe.hset(events, message.value.event_id, message.position)
        pipe.incrby(writes, len(batch))
        await pipe.execute()
        if settings.delay_s:
            await asyncio.sleep(settings.delay_s)

    async def redis_ready() -> bool:
        return bool(await client.ping())

    loop = runtime.consumer_loop(topics=[settings.topic], handler=handler, classifier=classifier)
    return Wiring(loops=[loop], readiness={"redis": redis_ready})


def main() -> None:
    settings = load_settings(WorkerSettings)
    asyncio.run(run_service(settings, wire))


if __name__ == "__main__":
    main()
