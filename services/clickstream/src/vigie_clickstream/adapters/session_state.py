"""Open sessions in Redis, per Kafka partition of the raw topic.

Per partition ``p``: a hash ``<prefix>:{<topic>:<p>}:open`` (user → the session as JSON), a sorted
set ``...:idle`` (user → the session's last event time, µs) to find the ones the watermark
expires without scanning, and ``...:wm`` (the partition's watermark). The braces keep one
partition's keys in one Redis Cluster slot. Whoever owns the partition after a restart or a
rebalance reads the same state, so sessions go on instead of being cut at every deploy.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import orjson
from redis import exceptions as rex

from vigie_stores import StoreUnavailable
from vigie_stores.redis import RedisStore

from ..handlers.sessions import OpenSession


class SessionState:
    def __init__(self, store: RedisStore, prefix: str, topic: str) -> None:
        self.store = store
        self.prefix = prefix
        self.topic = topic

    def _keys(self, partition: int) -> tuple[str, str, str]:
        base = f"{self.store.config.key_prefix}{self.prefix}:{{{self.topic}:{partition}}}"
        return f"{base}:open", f"{base}:idle", f"{base}:wm"

    async def load(
        self, partition: int, users: Iterable[str]
    ) -> tuple[dict[str, OpenSession], int]:
        """The open sessions of ``users`` and the partition's watermark (0: none yet)."""
        open_key, _, wm_key = self._keys(partition)
        wanted = sorted(set(users))
        try:
            pipe = self.store.client.pipeline(transaction=False)
            pipe.get(wm_key)
            if wanted:
                pipe.hmget(open_key, wanted)
            results = await pipe.execute()
        except (rex.ConnectionError, rex.TimeoutError) as exc:
            raise StoreUnavailable(str(exc), store="redis") from exc
        watermark = int(results[0]) if results[0] is not None else 0
        values = results[1] if wanted else []
        return _parse(wanted, values), watermark

    async def idle_before(
        self, partition: int, horizon_us: int, exclude: Mapping[str, OpenSession]
    ) -> dict[str, OpenSession]:
        """Open sessions of the partition whose last event is older than ``horizon_us``."""
        open_key, idle_key, _ = self._keys(partition)
        try:
            users = await self.store.client.zrangebyscore(idle_key, "-inf", f"({horizon_us}")
            # the store's client decodes responses: members are str
            wanted = sorted({str(u) for u in users} - set(exclude))
            if not wanted:
                return {}
            values = await self.store.client.hmget(open_key, wanted)
        except (rex.ConnectionError, rex.TimeoutError) as exc:
            raise StoreUnavailable(str(exc), store="redis") from exc
        return _parse(wanted, values)

    async def save(
        self,
        partition: int,
        open_sessions: Mapping[str, OpenSession],
        gone: Iterable[str],
        watermark_us: int,
    ) -> None:
        open_key, idle_key, wm_key = self._keys(partition)
        gone = list(gone)
        try:
            pipe = self.store.client.pipeline(transaction=True)
            if open_sessions:
                pipe.hset(
                    open_key,
                    mapping={u: orjson.dumps(s.to_json()) for u, s in open_sessions.items()},
                )
                pipe.zadd(idle_key, {u: s.end_us for u, s in open_sessions.items()})
            if gone:
                pipe.hdel(open_key, *gone)
                pipe.zrem(idle_key, *gone)
            pipe.set(wm_key, watermark_us)
            await pipe.execute()
        except (rex.ConnectionError, rex.TimeoutError) as exc:
            raise StoreUnavailable(str(exc), store="redis") from exc

    async def clear(self, partitions: Iterable[int]) -> None:
        keys = [k for p in partitions for k in self._keys(p)]
        if keys:
            await self.store.client.delete(*keys)


def _parse(users: list[str], values: list[bytes | str | None]) -> dict[str, OpenSession]:
    found: dict[str, OpenSession] = {}
    for user, raw in zip(users, values, strict=True):
        if raw is not None:
            found[user] = OpenSession.from_json(orjson.loads(raw))
    return found
