"""The consumer loop against the real broker: retries without commit, dead letters while the
next records go on, replay, graceful stop, transactions."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from runtime_testkit import BOOTSTRAP, producer, topics

from vigie_contracts import Envelope, Event
from vigie_contracts.topics import dead_letter
from vigie_runtime import (
    ConsumerLoop,
    KafkaSettings,
    Message,
    Poison,
    Retryable,
    TransactionalProducer,
    raw_decoder,
)
from vigie_runtime import headers as h
from vigie_runtime.dlq import replay
from vigie_runtime.testing import (
    collect,
    committed,
    eventually,
    running,
    sample_envelope,
    settings_for,
)

pytestmark = pytest.mark.integration

Batch = Sequence[Message[Envelope[Event]]]


async def test_failing_batch_is_retried_and_not_committed_until_it_succeeds(unique: str) -> None:
    service = f"t-{unique}"
    async with topics() as factory, producer() as p:
        src = await factory.create(f"rt-retry-{unique}")
        ids = [f"e-{i}" for i in range(10)]
        for i, event_id in enumerate(ids):
            await p.send(src, sample_envelope(i, event_id=event_id), key=f"k{i}")

        calls: list[int] = []
        written: list[str] = []
        release = asyncio.Event()

        async def handler(batch: Batch) -> None:
            calls.append(len(batch))
            if not release.is_set():
                raise Retryable("store timed out")
            written.extend(m.value.event_id for m in batch)

        settings = settings_for(
            BOOTSTRAP,
            service,
            retry_max_attempts=50,
            retry_backoff_initial_s=0.05,
            retry_backoff_max_s=0.2,
        )
        loop = ConsumerLoop(settings, topics=[src], handler=handler, producer=p)
        async with running(loop):

            async def failed_three_times() -> bool:
                return len(calls) >= 3

            await eventually(failed_three_times)
            # a separate client sees nothing committed while the writes fail
            assert await committed(BOOTSTRAP, settings.group_id, src.name) == [-1]
            assert written == []
            release.set()

            async def all_committed() -> bool:
                return await committed(BOOTSTRAP, settings.group_id, src.name) == [10]

            await eventually(all_committed)
        assert sorted(written) == sorted(ids)  # every record written once it worked
        assert len(calls) >= 4
        retries = loop.metrics.value("vigie_batch_retries_total", {"service": service})
        assert retries == len(calls) - (len(calls) - retries)  # counted
        assert retries >= 3
        assert (
            loop.metrics.value(
                "vigie_messages_processed_total", {"service": service, "topic": src.name}
            )
            == 10
        )


async def test_poison_and_undecodable_records_are_dead_lettered_while_the_rest_go_on(
    unique: str,
) -> None:
    service = f"t-{unique}"
    async with topics() as factory, producer() as p:
        src = await factory.create(f"rt-poison-{unique}")
        dlq = await factory.create(dead_letter(service).name)
        await p.send(src, sample_envelope(0, event_id="ok-0"), key="k0")
        await p.send_raw(src, b"\x00 not avro", key="k-garbage", headers=[("x-origin", b"sdk")])
        await p.send(src, sample_envelope(2, event_id="poison"), key="k-poison")
        for i in range(3, 8):
            await p.send(src, sample_envelope(i, event_id=f"ok-{i}"), key=f"k{i}")

        written: list[str] = []

        async def handler(batch: Batch) -> None:
            if any(m.value.event_id == "poison" for m in batch):
                raise Poison("amount must be positive")
            written.extend(m.value.event_id for m in batch)

        settings = settings_for(BOOTSTRAP, service)
        loop = ConsumerLoop(settings, topics=[src], handler=handler, producer=p)
        async with running(loop):

            async def done() -> bool:
                return await committed(BOOTSTRAP, settings.group_id, src.name) == [8]

            await eventually(done)
        assert sorted(written) == sorted(["ok-0", *(f"ok-{i}" for i in range(3, 8))])

        letters = await collect(BOOTSTRAP, dlq.name, 2, timeout_s=10)
        assert len(letters) == 2
        garbage, poison = sorted(
            letters, key=lambda r: int(h.header(r.headers, h.DLQ_OFFSET) or -1)
        )
        assert garbage.key == b"k-garbage" and garbage.value == b"\x00 not avro"
        assert h.header(garbage.headers, "x-origin") == "sdk"  # original headers kept
        assert h.header(garbage.headers, h.DLQ_ERROR_TYPE) == "vigie_contracts.errors.DecodeError"
        assert h.header(garbage.headers, h.DLQ_OFFSET) == "1"
        assert h.header(poison.headers, h.DLQ_ERROR) == "amount must be positive"
        assert h.header(poison.headers, h.DLQ_ERROR_TYPE) == "vigie_runtime.errors.Poison"
        assert h.header(poison.headers, h.DLQ_TOPIC) == src.name
        assert h.header(poison.headers, h.DLQ_PARTITION) == "0"
        assert h.header(poison.headers, h.DLQ_OFFSET) == "2"
        assert h.header(poison.headers, h.DLQ_SERVICE) == service
        assert int(h.header(poison.headers, h.DLQ_TIMESTAMP) or 0) > 1_600_000_000_000
        assert h.header(poison.headers, h.EVENT_ID) == "poison"
        m = loop.metrics
        assert (
            m.value(
                "vigie_messages_dead_lettered_total",
                {
                    "service": service,
                    "topic": src.name,
                    "error_type": "vigie_runtime.errors.Poison",
                },
            )
            == 1
        )

        # `vigie-dlq list` shows both with their errors
        env = {**os.environ, "VIGIE_KAFKA__BOOTSTRAP_SERVERS": BOOTSTRAP}
        cli = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).with_name("vigie-dlq")),
            "list",
            "--service",
            service,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(cli.communicate(), 60)
        assert cli.returncode == 0, err.decode()
        assert b"amount must be positive" in out
        assert b"DecodeError" in out
        assert b"2 dead letter(s)" in err

        # replay sends them back, with the original key and headers and where they came from
        done_letters = await replay(KafkaSettings(bootstrap_servers=BOOTSTRAP), service, p, limit=1)
        assert [letter.offset for letter in done_letters] == [0]
        back = await collect(BOOTSTRAP, src.name, 9, timeout_s=10)
        assert len(back) == 9
        replayed = back[-1]
        assert replayed.key == b"k-garbage" and replayed.value == b"\x00 not avro"
        assert h.header(replayed.headers, "x-origin") == "sdk"
        assert h.header(replayed.headers, h.DLQ_REPLAYED_FROM) == f"{dlq.name}:0:0"
        assert h.header(replayed.headers, h.DLQ_ERROR) is None


async def test_retries_exhausted_isolate_the_failing_record(unique: str) -> None:
    service = f"t-{unique}"
    async with topics() as factory, producer() as p:
        src = await factory.create(f"rt-iso-{unique}")
        dlq = await factory.create(dead_letter(service).name)
        for i in range(6):
            await p.send(src, sample_envelope(i, event_id=f"e-{i}"), key=f"k{i}")
        written: list[str] = []

        async def handler(batch: Batch) -> None:
            if any(m.value.event_id == "e-3" for m in batch):
                raise Retryable("this row's partition in the store is offline")
            written.extend(m.value.event_id for m in batch)

        settings = settings_for(
            BOOTSTRAP,
            service,
            retry_max_attempts=3,
            retry_backoff_initial_s=0.05,
            retry_backoff_max_s=0.1,
        )
        loop = ConsumerLoop(settings, topics=[src], handler=handler, producer=p)
        async with running(loop):

            async def done() -> bool:
                return await committed(BOOTSTRAP, settings.group_id, src.name) == [6]

            await eventually(done)
        assert sorted(written) == ["e-0", "e-1", "e-2", "e-4", "e-5"]
        letters = await collect(BOOTSTRAP, dlq.name, 1, timeout_s=10)
        assert [h.header(r.headers, h.DLQ_ERROR_TYPE) for r in letters] == [
            "vigie_runtime.errors.Retryable"
        ]
        assert h.header(letters[0].headers, h.DLQ_OFFSET) == "3"


async def test_stop_finishes_the_batch_in_flight_and_commits_it(unique: str) -> None:
    service = f"t-{unique}"
    async with topics() as factory, producer() as p:
        src = await factory.create(f"rt-stop-{unique}", partitions=2)
        for i in range(40):
            await p.send_raw(src, str(i).encode(), key=f"k{i}")
        entered = asyncio.Event()
        seen: list[bytes] = []

        async def slow(batch: Sequence[Message[bytes | None]]) -> None:
            entered.set()
            await asyncio.sleep(0.5)  # the stop arrives while this batch is being written
            seen.extend(m.value or b"" for m in batch)

        settings = settings_for(BOOTSTRAP, service, batch_max_records=40)
        loop = ConsumerLoop(settings, topics=[src], handler=slow, producer=p, decoder=raw_decoder)
        task = asyncio.create_task(loop.run())
        await asyncio.wait_for(entered.wait(), 20)
        loop.stop()
        await asyncio.wait_for(task, 20)
        offsets = await committed(BOOTSTRAP, settings.group_id, src.name, partitions=2)
        # what was handled is committed: no more, no less
        assert sum(offsets) == len(seen) > 0


async def test_rebalance_hands_partitions_over_without_loss(unique: str) -> None:
    service = f"t-{unique}"
    async with topics() as factory, producer() as p:
        src = await factory.create(f"rt-rebal-{unique}", partitions=4)
        total = 2000
        for i in range(total):
            await p.enqueue(src, str(i).encode(), key=str(i))
        await p.flush()
        seen: dict[str, list[bytes]] = {"a": [], "b": []}

        def handler_for(name: str) -> Any:
            async def handler(batch: Sequence[Message[bytes | None]]) -> None:
                await asyncio.sleep(0.05)  # slow enough that b joins while a is busy
                seen[name].extend(m.value or b"" for m in batch)

            return handler

        settings = settings_for(BOOTSTRAP, service, batch_max_records=20, session_timeout_ms=6000)
        a = ConsumerLoop(
            settings, topics=[src], handler=handler_for("a"), producer=p, decoder=raw_decoder
        )
        b = ConsumerLoop(
            settings, topics=[src], handler=handler_for("b"), producer=p, decoder=raw_decoder
        )
        async with running(a):

            async def a_started() -> bool:
                return len(seen["a"]) > 0

            await eventually(a_started)
            async with running(b):  # joins mid-stream: partitions move from a to b

                async def all_seen() -> bool:
                    return len(set(seen["a"]) | set(seen["b"])) == total

                await eventually(all_seen, timeout_s=60)
        assert seen["b"], "the second member got partitions"
        # on revoke a committed what it had done, so b re-read little or nothing
        duplicates = len(seen["a"]) + len(seen["b"]) - total
        assert duplicates <= 20 * 4
        offsets = await committed(BOOTSTRAP, settings.group_id, src.name, partitions=4)
        assert sum(offsets) == total


async def test_transactional_step_commits_outputs_and_offsets_together(unique: str) -> None:
    service = f"t-{unique}"
    async with topics() as factory, producer() as p:
        src = await factory.create(f"rt-txn-in-{unique}")
        out = await factory.create(f"rt-txn-out-{unique}")
        for i in range(20):
            await p.send_raw(src, str(i).encode(), key=str(i))
        failures = {"left": 2}
        txn = TransactionalProducer(
            KafkaSettings(bootstrap_servers=BOOTSTRAP), transactional_id=f"txn-{unique}"
        )
        await txn.start()
        try:

            async def handler(batch: Sequence[Message[bytes | None]]) -> None:
                for m in batch:
                    await txn.send_raw(out, m.value, key=m.key)
                if failures["left"]:
                    failures["left"] -= 1
                    raise Retryable("store hiccup after producing: the transaction aborts")

            settings = settings_for(
                BOOTSTRAP, service, retry_backoff_initial_s=0.05, retry_backoff_max_s=0.1
            )
            loop = ConsumerLoop(
                settings,
                topics=[src],
                handler=handler,
                producer=p,
                decoder=raw_decoder,
                transactional=txn,
            )
            async with running(loop):

                async def done() -> bool:
                    return await committed(BOOTSTRAP, settings.group_id, src.name) == [20]

                await eventually(done)
        finally:
            await txn.stop()
        committed_out = await collect(
            BOOTSTRAP, out.name, 100, timeout_s=3, isolation_level="read_committed"
        )
        # the two aborted attempts produced too, but a read_committed consumer sees each once
        assert sorted(int(r.value) for r in committed_out) == list(range(20))
        everything = await collect(BOOTSTRAP, out.name, 100, timeout_s=3)
        assert len(everything) > 20  # (read_uncommitted does see the aborted attempts)


async def test_unclassified_error_stops_the_loop_without_commit(unique: str) -> None:
    service = f"t-{unique}"
    async with topics() as factory, producer() as p:
        src = await factory.create(f"rt-fatal-{unique}")
        await p.send_raw(src, b"x", key="k")

        async def buggy(batch: Sequence[Message[bytes | None]]) -> None:
            raise KeyError("bug")

        settings = settings_for(BOOTSTRAP, service)
        loop = ConsumerLoop(settings, topics=[src], handler=buggy, producer=p, decoder=raw_decoder)
        from vigie_runtime import Fatal

        with pytest.raises(Fatal, match="KeyError"):
            await asyncio.wait_for(loop.run(), 30)
        assert await committed(BOOTSTRAP, settings.group_id, src.name) == [-1]
