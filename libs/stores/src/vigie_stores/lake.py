"""The data lake's raw zone: Kafka records as Parquet, partitioned by topic and event hour.

Layout (Hive style, read by Spark, DuckDB, pyarrow.dataset, Athena)::

    <root>/topic=<topic>/date=YYYY-MM-DD/hour=HH/<topic>+<partition>+<first>+<last>.parquet

- The date and hour are those of the record's **event time** (UTC), not of its arrival.
- One file holds records of one Kafka partition, so its name carries the partition and the first
  and last offsets: a replay that rolls at the same offsets rewrites the same name instead of
  adding a duplicate. Rolling by age can move the boundaries, so batch jobs deduplicate on
  ``(topic, partition, offset)``, which every row carries.
- A file is written under ``<root>/_tmp/<uuid>.parquet`` and renamed to its final name only when
  complete. Readers ignore ``_``-prefixed paths, so a crashed writer leaves no partial file
  visible; ``committable_offsets()`` tells the consumer loop what it may commit.
- Files roll when they reach ``max_file_bytes`` or ``max_file_age``, and on ``flush``/``close``.

The filesystem is any fsspec URL: a local path (the default), ``memory://`` for tests, and
``s3://``, ``gs://``, ``abfs://`` when s3fs, gcsfs or adlfs are installed (credentials through
``storage_options`` or the usual environment). On object stores "rename" is a copy then a
delete, so the final object still appears at once, complete.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import fsspec  # type: ignore[import-untyped]  # fsspec ships no type information
import pyarrow as pa  # type: ignore[import-untyped]  # pyarrow ships no type information
import pyarrow.parquet as pq  # type: ignore[import-untyped]
from pydantic import BaseModel, ConfigDict, Field

from .closing import ClosedOnExit
from .errors import StoreClosed, StoreError, StoreRejected, StoreUnavailable

_STORE = "lake"
_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")  # Kafka's own topic alphabet

RAW_SCHEMA = pa.schema(
    [
        pa.field("topic", pa.string(), nullable=False),
        pa.field("partition", pa.int32(), nullable=False),
        pa.field("offset", pa.int64(), nullable=False),
        pa.field("key", pa.binary()),
        pa.field("value", pa.binary()),  # null for a tombstone
        pa.field(
            "headers",
            pa.list_(pa.struct([pa.field("key", pa.string()), pa.field("value", pa.binary())])),
        ),
        pa.field("event_time", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("ingest_time", pa.timestamp("us", tz="UTC"), nullable=False),
    ]
)
"""The raw zone's schema: a Kafka record as received, plus when it happened and arrived."""

REQUIRED_FIELDS = ("topic", "partition", "offset", "event_time")


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One Kafka record for ``RAW_SCHEMA``; times must be timezone-aware."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    event_time: datetime
    ingest_time: datetime
    headers: Sequence[tuple[str, bytes | None]] = ()

    def row(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "key": self.key,
            "value": self.value,
            "headers": [{"key": k, "value": v} for k, v in self.headers],
            "event_time": self.event_time,
            "ingest_time": self.ingest_time,
        }


class LakeConfig(BaseModel):
    """Where the raw zone lives and when files roll."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str = Field(default="lake", description="local path, or fsspec URL (s3://bucket/raw)")
    storage_options: dict[str, str] = Field(default_factory=dict, description="for fsspec")
    max_file_bytes: int = Field(default=128 * 2**20, ge=1)
    max_file_age: timedelta = Field(default=timedelta(minutes=10), gt=timedelta(0))
    row_group_bytes: int = Field(
        default=16 * 2**20, ge=1, description="Arrow bytes buffered per file before a row group"
    )
    compression: Literal["zstd", "snappy", "gzip", "lz4", "none"] = "zstd"


@dataclass(frozen=True, slots=True, order=True)
class _FileKey:
    topic: str
    partition: int
    date: str
    hour: str

    @property
    def directory(self) -> str:
        return f"topic={self.topic}/date={self.date}/hour={self.hour}"


@dataclass(slots=True)
class _OpenFile:
    key: _FileKey
    temp_path: str
    opened_at: float
    first: int
    last: int
    buffer: list[Any] = field(default_factory=list)  # Arrow tables not yet in a row group
    buffered_bytes: int = 0
    handle: Any = None  # the fsspec file, once the first row group is written
    writer: Any = None  # pq.ParquetWriter


@contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        raise StoreRejected(f"records do not fit the schema: {exc}", store=_STORE) from exc
    except KeyError as exc:  # a mapping without one of REQUIRED_FIELDS
        raise StoreRejected(f"record lacks field {exc}", store=_STORE) from exc
    except (OSError, TimeoutError) as exc:  # incl. ConnectionError of remote filesystems
        raise StoreUnavailable(str(exc) or type(exc).__name__, store=_STORE) from exc
    except pa.ArrowException as exc:
        raise StoreError(str(exc), store=_STORE) from exc


def _event_hour(value: Any) -> tuple[str, str]:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise StoreRejected(f"event_time not a timezone-aware datetime: {value!r}", store=_STORE)
    utc = value.astimezone(UTC)
    return utc.strftime("%Y-%m-%d"), utc.strftime("%H")


class LakeWriter(ClosedOnExit):
    """Buffers records per (topic, Kafka partition, event date, hour) and writes Parquet files.

    Not shared between tasks: the methods serialize on a lock and run the blocking Parquet and
    filesystem work in a thread, so the event loop keeps serving.
    """

    def __init__(
        self,
        config: LakeConfig,
        *,
        schema: Any = RAW_SCHEMA,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        missing = [name for name in REQUIRED_FIELDS if schema.get_field_index(name) < 0]
        if missing:
            raise ValueError(f"schema lacks the fields the layout needs: {missing}")
        self.config = config
        self.schema = schema
        self._clock = clock
        self._fs, root = fsspec.core.url_to_fs(config.url, **config.storage_options)
        self._root: str = str(root).rstrip("/")
        self._open: dict[_FileKey, _OpenFile] = {}
        self._seen: dict[tuple[str, int], int] = {}
        self._lock = asyncio.Lock()
        self._closed = False
        self._failed: BaseException | None = None

    @property
    def root(self) -> str:
        """The root path inside the filesystem (without the protocol)."""
        return self._root

    @property
    def filesystem(self) -> Any:
        """The fsspec filesystem, e.g. to hand to ``pyarrow.dataset.dataset(filesystem=...)``."""
        return self._fs

    async def write(self, records: Iterable[RawRecord | Mapping[str, Any]]) -> list[str]:
        """Buffer ``records`` (and write what is due); returns the paths of files completed.

        Records at or below an offset already accepted for their partition are skipped, so
        retrying a batch (another store of the same batch failed) does not duplicate rows. A
        batch that does not fit the schema raises ``StoreRejected`` and buffers nothing.
        """
        rows = [r.row() if isinstance(r, RawRecord) else r for r in records]
        return await self._locked(self._write, rows)

    async def roll_expired(self) -> list[str]:
        """Complete the files older than ``max_file_age``; call it from a periodic task too."""
        return await self._locked(self._roll_expired)

    async def flush(self) -> list[str]:
        """Complete every open file (e.g. before committing everything consumed so far)."""
        return await self._locked(self._roll_all)

    async def close(self) -> list[str]:
        """Complete every open file, then refuse further writes."""
        if self._closed:
            return []
        done = await self.flush()
        self._closed = True
        return done

    async def abandon(self) -> None:
        """Drop open files without completing them (their temporary files are removed).

        What to do after a write failed with ``StoreUnavailable``: the writer refuses further
        work, since an open file may be damaged. Seek each partition back to
        ``committable_offsets()`` + 1 (what the consumer committed) and start a new writer.
        """
        async with self._lock:
            self._closed = True
            temps = [f.temp_path for f in self._open.values()]
            self._open.clear()
            await asyncio.to_thread(self._remove_quietly, temps)

    def committable_offsets(self) -> dict[tuple[str, int], int]:
        """Per (topic, partition): the highest offset up to which every record is in a final file.

        Commit ``offset + 1`` to Kafka. Assumes each partition's records are written in offset
        order, as a consumer receives them.
        """
        safe = dict(self._seen)
        for f in self._open.values():
            tp = (f.key.topic, f.key.partition)
            safe[tp] = min(safe[tp], f.first - 1)
        return {tp: offset for tp, offset in safe.items() if offset >= 0}

    # -- blocking work, run in a thread -----------------------------------------------------

    async def _locked(self, fn: Callable[..., list[str]], *args: Any) -> list[str]:
        if self._closed:
            raise StoreClosed("used after close()", store=_STORE)
        if self._failed is not None:
            raise StoreUnavailable(
                f"writer failed earlier ({self._failed!r}): abandon() it and re-consume",
                store=_STORE,
            )
        async with self._lock:
            with _translated():
                return await asyncio.to_thread(fn, *args)

    def _io(self, fn: Callable[[], list[str]]) -> list[str]:
        # An I/O failure may leave a half-written row group behind: stop using this writer.
        try:
            return fn()
        except BaseException as exc:
            self._failed = exc
            raise

    def _write(self, rows: list[Mapping[str, Any]]) -> list[str]:
        # Validate everything first, so a bad batch changes nothing.
        table = pa.Table.from_pylist(rows, schema=self.schema)
        groups: dict[_FileKey, list[int]] = {}
        for index, row in enumerate(rows):
            topic = row["topic"]
            if not isinstance(topic, str) or not _TOPIC.match(topic):
                raise StoreRejected(f"not a Kafka topic name: {topic!r}", store=_STORE)
            partition, offset = int(row["partition"]), int(row["offset"])
            if offset <= self._seen.get((topic, partition), -1):
                continue  # already accepted: a retried batch
            date, hour = _event_hour(row["event_time"])
            groups.setdefault(_FileKey(topic, partition, date, hour), []).append(index)

        now = self._clock()
        due: list[_OpenFile] = []
        for key, indices in groups.items():
            offsets = [int(rows[i]["offset"]) for i in indices]
            part = table.take(indices)
            f = self._open.get(key)
            if f is None:
                temp = f"{self._root}/_tmp/{uuid.uuid4().hex}.parquet"
                f = self._open[key] = _OpenFile(key, temp, now, min(offsets), max(offsets))
            f.first, f.last = min(f.first, *offsets), max(f.last, *offsets)
            f.buffer.append(part)
            f.buffered_bytes += part.nbytes
            tp = (key.topic, key.partition)
            self._seen[tp] = max(self._seen.get(tp, -1), f.last)
            if f.buffered_bytes >= self.config.row_group_bytes:
                due.append(f)
        return self._io(lambda: self._write_due(due) + self._roll_expired())

    def _write_due(self, files: list[_OpenFile]) -> list[str]:
        done: list[str] = []
        for f in files:
            self._write_row_group(f)
            if f.handle.tell() >= self.config.max_file_bytes:
                done.append(self._roll(f))
        return done

    def _remove_quietly(self, paths: list[str]) -> None:
        for path in paths:
            try:
                self._fs.rm(path)
            except (OSError, FileNotFoundError):
                pass  # never written (nothing reached a row group) or already gone

    def _write_row_group(self, f: _OpenFile) -> None:
        if not f.buffer:
            return
        if f.writer is None:
            self._fs.makedirs(f"{self._root}/_tmp", exist_ok=True)
            f.handle = self._fs.open(f.temp_path, "wb")
            f.writer = pq.ParquetWriter(f.handle, self.schema, compression=self.config.compression)
        f.writer.write_table(pa.concat_tables(f.buffer))
        f.buffer.clear()
        f.buffered_bytes = 0

    def _roll(self, f: _OpenFile) -> str:
        self._write_row_group(f)
        f.writer.close()
        f.handle.close()
        directory = f"{self._root}/{f.key.directory}"
        final = f"{directory}/{f.key.topic}+{f.key.partition}+{f.first:019d}+{f.last:019d}.parquet"
        self._fs.makedirs(directory, exist_ok=True)
        self._fs.mv(f.temp_path, final)
        del self._open[f.key]
        return final

    def _roll_expired(self) -> list[str]:
        limit = self.config.max_file_age.total_seconds()
        now = self._clock()
        due = sorted((f for f in self._open.values() if now - f.opened_at >= limit), key=_by_key)
        return self._io(lambda: [self._roll(f) for f in due])

    def _roll_all(self) -> list[str]:
        due = sorted(self._open.values(), key=_by_key)
        return self._io(lambda: [self._roll(f) for f in due])


def _by_key(f: _OpenFile) -> _FileKey:
    return f.key
