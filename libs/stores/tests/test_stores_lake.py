"""LakeWriter on the local filesystem and fsspec's memory filesystem."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa  # type: ignore[import-untyped]  # pyarrow ships no type information
import pyarrow.dataset as ds  # type: ignore[import-untyped]
import pytest

from vigie_stores import RecordSink, StoreClosed, StoreRejected
from vigie_stores.lake import RAW_SCHEMA, LakeConfig, LakeWriter, RawRecord

T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
NOW = datetime(2026, 11, 27, 9, 30, tzinfo=UTC)


def record(offset: int, event_time: datetime, *, partition: int = 0, size: int = 16) -> RawRecord:
    return RawRecord(
        topic="payments.transactions",
        partition=partition,
        offset=offset,
        key=f"c{offset % 7}".encode(),
        value=os.urandom(size),
        event_time=event_time,
        ingest_time=NOW,
        headers=[("traceparent", b"00-abc-def-01")],
    )


def final_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.parquet") if "_tmp" not in p.parts)


def read(root: Path) -> pa.Table:
    return ds.dataset(str(root), format="parquet", partitioning="hive").to_table()


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_satisfies_the_interface(tmp_path: Path) -> None:
    sink: RecordSink = LakeWriter(LakeConfig(url=str(tmp_path)))  # checked by mypy
    assert isinstance(sink, LakeWriter)


async def test_partitions_follow_event_time_not_arrival(tmp_path: Path) -> None:
    late = T0 - timedelta(days=1, minutes=30)  # yesterday 08:30, arriving today
    records = [record(i, T0 + timedelta(minutes=25 * (i % 4))) for i in range(200)]
    records.append(record(200, late))
    async with LakeWriter(LakeConfig(url=str(tmp_path))) as lake:
        await lake.write(records)

    dirs = {p.parent.relative_to(tmp_path).as_posix() for p in final_files(tmp_path)}
    assert dirs == {
        "topic=payments.transactions/date=2026-11-25/hour=09",
        "topic=payments.transactions/date=2026-11-26/hour=10",
        "topic=payments.transactions/date=2026-11-26/hour=11",
    }
    table = read(tmp_path)
    assert table.num_rows == 201
    assert sorted(table.column("offset").to_pylist()) == list(range(201))
    by_hour = table.group_by(["date", "hour"]).aggregate([("offset", "count")]).to_pylist()
    assert sorted((r["date"], r["hour"], r["offset_count"]) for r in by_hour) == [
        ("2026-11-25", 9, 1),
        ("2026-11-26", 10, 150),
        ("2026-11-26", 11, 50),
    ]
    assert table.schema.field("event_time").type == pa.timestamp("us", tz="UTC")
    name = final_files(tmp_path)[0].name
    assert name == "payments.transactions+0+0000000000000000200+0000000000000000200.parquet"


async def test_files_roll_by_size(tmp_path: Path) -> None:
    config = LakeConfig(url=str(tmp_path), max_file_bytes=40_000, row_group_bytes=10_000)
    async with LakeWriter(config) as lake:
        for start in range(0, 1000, 100):
            await lake.write([record(i, T0, size=400) for i in range(start, start + 100)])
        files_before_close = final_files(tmp_path)

    assert len(files_before_close) >= 5
    files = final_files(tmp_path)
    assert read(tmp_path).num_rows == 1000
    ranges = sorted(
        (int(first), int(last)) for first, last in (p.stem.split("+")[2:] for p in files)
    )
    # Consecutive, non-overlapping offset ranges covering everything written.
    assert ranges[0][0] == 0 and ranges[-1][1] == 999
    assert all(a[1] + 1 == b[0] for a, b in zip(ranges, ranges[1:], strict=False))
    assert all(p.stat().st_size < 40_000 + 2 * 10_000 for p in files)


async def test_files_roll_by_age(tmp_path: Path) -> None:
    clock = FakeClock()
    config = LakeConfig(url=str(tmp_path), max_file_age=timedelta(seconds=60))
    lake = LakeWriter(config, clock=clock)
    await lake.write([record(i, T0) for i in range(10)])
    clock.now = 59
    assert await lake.roll_expired() == []
    assert final_files(tmp_path) == []

    clock.now = 61
    await lake.write([record(i, T0 + timedelta(hours=1)) for i in range(10, 15)])  # new file
    assert len(final_files(tmp_path)) == 1  # the old one rolled; the new one is young
    assert lake.committable_offsets() == {("payments.transactions", 0): 9}

    await lake.close()
    assert read(tmp_path).num_rows == 15
    assert lake.committable_offsets() == {("payments.transactions", 0): 14}
    with pytest.raises(StoreClosed):
        await lake.write([record(99, T0)])


def test_a_killed_writer_leaves_no_partial_file_visible(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import asyncio, os, signal
        from datetime import datetime, UTC
        from vigie_stores.lake import LakeConfig, LakeWriter, RawRecord

        async def main():
            config = LakeConfig(url={str(tmp_path)!r}, row_group_bytes=1_000)
            lake = LakeWriter(config)
            t = datetime(2026, 11, 26, 10, tzinfo=UTC)
            await lake.write(
                [RawRecord("clicks", 0, i, None, os.urandom(100), t, t) for i in range(500)]
            )
            os.kill(os.getpid(), signal.SIGKILL)  # before close: the file is incomplete

        asyncio.run(main())
        """
    )
    done = subprocess.run([sys.executable, "-c", script], timeout=60, check=False)  # noqa: S603
    assert done.returncode == -9

    temps = list((tmp_path / "_tmp").glob("*.parquet"))
    assert len(temps) == 1 and temps[0].stat().st_size > 0  # bytes were written...
    assert final_files(tmp_path) == []  # ...but nothing a reader would pick up
    assert read(tmp_path).num_rows == 0


async def test_a_replay_rewrites_the_same_file_names(tmp_path: Path) -> None:
    batch = [record(i, T0, partition=i % 3) for i in range(300)]
    async with LakeWriter(LakeConfig(url=str(tmp_path))) as lake:
        await lake.write(batch)
        await lake.write(batch[:120])  # a retried batch: already accepted, skipped
    first = [p.name for p in final_files(tmp_path)]
    async with LakeWriter(LakeConfig(url=str(tmp_path))) as lake:
        await lake.write(batch)  # a new consumer re-reading the same offsets
    assert [p.name for p in final_files(tmp_path)] == first
    assert len(first) == 3
    assert read(tmp_path).num_rows == 300


async def test_a_bad_batch_is_rejected_and_buffers_nothing(tmp_path: Path) -> None:
    lake = LakeWriter(LakeConfig(url=str(tmp_path)))
    naive = datetime(2026, 11, 26, 10)  # the point of the test
    with pytest.raises(StoreRejected, match="timezone"):
        await lake.write([record(0, T0), record(1, naive)])
    with pytest.raises(StoreRejected, match="schema"):
        await lake.write([{**record(2, T0).row(), "offset": "two"}])
    with pytest.raises(StoreRejected, match="lacks"):
        await lake.write([{k: v for k, v in record(4, T0).row().items() if k != "offset"}])
    with pytest.raises(StoreRejected, match="topic"):
        await lake.write([{**record(3, T0).row(), "topic": "../etc"}])
    assert lake.committable_offsets() == {}
    assert await lake.close() == []


async def test_typed_records_and_the_memory_filesystem() -> None:
    schema = pa.schema(
        [
            ("topic", pa.string()),
            ("partition", pa.int32()),
            ("offset", pa.int64()),
            ("event_time", pa.timestamp("ms", tz="UTC")),
            ("customer_id", pa.string()),
            ("amount_minor", pa.int64()),
        ]
    )
    url = f"memory://lake-{uuid.uuid4().hex}"
    lake = LakeWriter(LakeConfig(url=url), schema=schema)
    rows = [
        {
            "topic": "payments.transactions",
            "partition": 1,
            "offset": i,
            "event_time": T0 + timedelta(minutes=i),
            "customer_id": f"c{i % 5}",
            "amount_minor": 100 * i,
        }
        for i in range(90)
    ]
    await lake.write(rows)
    written = await lake.close()

    assert len(written) == 2  # hours 10 and 11
    dataset = ds.dataset(
        lake.root, format="parquet", partitioning="hive", filesystem=lake.filesystem
    )
    table = dataset.to_table()
    assert table.num_rows == 90
    assert sum(table.column("amount_minor").to_pylist()) == 100 * sum(range(90))

    with pytest.raises(ValueError, match="offset"):
        LakeWriter(LakeConfig(url=url), schema=pa.schema([("topic", pa.string())]))


def test_the_raw_schema_is_fixed() -> None:
    assert RAW_SCHEMA.names == [
        "topic",
        "partition",
        "offset",
        "key",
        "value",
        "headers",
        "event_time",
        "ingest_time",
    ]
