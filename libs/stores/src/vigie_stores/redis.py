"""Redis through redis-py's asyncio client: hashes written and read in one round trip.

The online feature store keeps one hash per entity. Writes go through a non-transactional
pipeline (one round trip, no MULTI), and the versioned variant runs a Lua script that compares
the stored version field with the incoming one, so an update computed from older events never
overwrites a newer one, whatever order the writes arrive in.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Self, cast

import redis.asyncio as aioredis
from pydantic import BaseModel, ConfigDict, Field, SecretStr
from redis import exceptions as rex
from redis.typing import EncodableT

from .closing import ClosedOnExit
from .errors import StoreClosed, StoreError, StoreRejected, StoreUnavailable
from .results import BatchOutcome, Outcome

_STORE = "redis"

# Lua numbers are doubles: versions are compared exactly up to 2**53 (epoch microseconds and
# source positions fit with room to spare).
MAX_VERSION = 2**53

FieldValue = str | int | float

# KEYS[1] = hash; ARGV = version field, version, ttl ms (0: keep), then field/value pairs.
_VERSIONED_HSET = """
local stored = redis.call('HGET', KEYS[1], ARGV[1])
if stored and tonumber(stored) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2], unpack(ARGV, 4))
local ttl = tonumber(ARGV[3])
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return 1
"""


class RedisConfig(BaseModel):
    """Where Redis listens and how long to wait for it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")
    connect_timeout: float = Field(default=2.0, gt=0, description="seconds")
    socket_timeout: float = Field(default=5.0, gt=0, description="seconds per command")
    max_connections: int = Field(default=64, ge=1)
    key_prefix: str = Field(default="", description="prepended to every key (namespacing)")
    default_ttl: timedelta | None = Field(default=None, description="when a write gives none")
    version_field: str = Field(default="_v", min_length=1)


@dataclass(frozen=True, slots=True)
class VersionedHash:
    """One hash to write only if ``version`` is newer than the stored one."""

    key: str
    fields: Mapping[str, FieldValue]
    version: int


@contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except (rex.ConnectionError, rex.TimeoutError, rex.BusyLoadingError, rex.TryAgainError) as exc:
        raise StoreUnavailable(str(exc) or type(exc).__name__, store=_STORE) from exc
    except rex.ReadOnlyError as exc:  # a replica answering during failover
        raise StoreUnavailable(str(exc), store=_STORE) from exc
    except (rex.ResponseError, rex.DataError, rex.AuthenticationError) as exc:
        raise StoreRejected(str(exc), store=_STORE) from exc
    except rex.RedisError as exc:
        raise StoreError(str(exc), store=_STORE) from exc
    except (OSError, TimeoutError) as exc:
        raise StoreUnavailable(str(exc) or type(exc).__name__, store=_STORE) from exc


def _ttl_ms(ttl: timedelta | None) -> int:
    return 0 if ttl is None else max(1, int(ttl.total_seconds() * 1000))


class RedisStore(ClosedOnExit):
    """Hash reads and writes batched into pipelines. Open with ``await RedisStore.open(config)``."""

    def __init__(self, config: RedisConfig, client: aioredis.Redis) -> None:
        self.config = config
        self._client: aioredis.Redis | None = client
        # run by digest: a pipeline of Script objects asks SCRIPT EXISTS first, every time
        self._versioned_sha = client.register_script(_VERSIONED_HSET).sha

    @classmethod
    async def open(cls, config: RedisConfig) -> Self:
        """Connect and ping, so a wrong address fails here rather than at the first write."""
        client = aioredis.Redis.from_url(
            config.url.get_secret_value(),
            decode_responses=True,
            socket_connect_timeout=config.connect_timeout,
            socket_timeout=config.socket_timeout,
            max_connections=config.max_connections,
        )
        store = cls(config, client)
        try:
            await store.ping()
        except StoreError:
            await client.aclose()
            raise
        return store

    @property
    def client(self) -> aioredis.Redis:
        """The underlying client, for commands this adapter does not wrap."""
        if self._client is None:
            raise StoreClosed("used after close()", store=_STORE)
        return self._client

    def _key(self, key: str) -> str:
        return self.config.key_prefix + key

    def _ttl(self, ttl: timedelta | None) -> timedelta | None:
        return ttl if ttl is not None else self.config.default_ttl

    async def ping(self) -> None:
        with _translated():
            await self.client.ping()

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    async def write_hashes(
        self,
        hashes: Mapping[str, Mapping[str, FieldValue]],
        *,
        ttl: timedelta | None = None,
        replace: bool = False,
    ) -> None:
        """Write many hashes (merge fields, or replace the hash) with a TTL, in one round trip."""
        expiry = self._ttl(ttl)
        pipe = self.client.pipeline(transaction=False)
        for key, fields in hashes.items():
            name = self._key(key)
            if replace:
                pipe.delete(name)
            if fields:
                # str keys are EncodableT keys; Mapping's key invariance needs telling.
                pipe.hset(name, mapping=cast("Mapping[EncodableT, EncodableT]", fields))
            if expiry is not None:
                pipe.pexpire(name, expiry)
        with _translated():
            await pipe.execute()

    async def read_hashes(self, keys: Sequence[str]) -> dict[str, dict[str, str]]:
        """Read many hashes in one round trip; keys that do not exist are absent from the result."""
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            pipe.hgetall(self._key(key))
        with _translated():
            found: list[dict[str, str]] = await pipe.execute()
        return {key: fields for key, fields in zip(keys, found, strict=True) if fields}

    async def read_hash(self, key: str) -> dict[str, str] | None:
        return (await self.read_hashes([key])).get(key)

    async def delete(self, keys: Sequence[str]) -> int:
        if not keys:
            return 0
        with _translated():
            return int(await self.client.delete(*(self._key(k) for k in keys)))

    async def ttl(self, key: str) -> timedelta | None:
        """The remaining time to live, or None when the key has none or does not exist."""
        with _translated():
            ms = int(await self.client.pttl(self._key(key)))
        return timedelta(milliseconds=ms) if ms >= 0 else None

    async def write_versioned(
        self,
        key: str,
        fields: Mapping[str, FieldValue],
        version: int,
        *,
        ttl: timedelta | None = None,
    ) -> Outcome:
        """Merge ``fields`` into the hash unless it already holds ``version`` or a newer one."""
        result = await self.write_versioned_many([VersionedHash(key, fields, version)], ttl=ttl)
        return Outcome.APPLIED if result.applied else Outcome.STALE

    async def _run_versioned(self, commands: Sequence[list[Any]]) -> list[int]:
        pipe = self.client.pipeline(transaction=False)
        for args in commands:
            pipe.evalsha(self._versioned_sha, 1, *args)
        return cast(list[int], await pipe.execute())

    async def write_versioned_many(
        self, items: Sequence[VersionedHash], *, ttl: timedelta | None = None
    ) -> BatchOutcome:
        """Versioned writes of many hashes in one round trip (each one atomic on the server)."""
        expiry = _ttl_ms(self._ttl(ttl))
        commands: list[list[Any]] = []
        for item in items:
            if not 0 <= item.version < MAX_VERSION:
                raise ValueError(f"version {item.version} outside [0, 2**53) for {item.key!r}")
            if self.config.version_field in item.fields:
                raise ValueError(f"field {self.config.version_field!r} is reserved for versions")
            args: list[Any] = [self._key(item.key), self.config.version_field, item.version, expiry]
            for name, value in item.fields.items():
                args += (name, value)
            commands.append(args)
        with _translated():
            try:
                flags = await self._run_versioned(commands)
            except rex.NoScriptError:
                # a restarted or flushed server refuses every command of the batch alike:
                # load the script, run the batch again
                await self.client.script_load(_VERSIONED_HSET)
                flags = await self._run_versioned(commands)
        stale = tuple(item.key for item, ok in zip(items, flags, strict=True) if not ok)
        return BatchOutcome(applied=len(items) - len(stale), stale=stale)
