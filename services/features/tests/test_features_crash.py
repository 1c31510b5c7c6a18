"""kill -9 of the worker in the middle of the stream: the restarted worker recovers its states
from the changelog topics (from nothing, its RocksDB folder gone as on a rescheduled pod; or from
its RocksDB folder and the changelogs' tails, as on a pod restarted in place) and Redis still
ends equal to compute_offline()."""

from __future__ import annotations

import shutil
import signal
import socket
from datetime import timedelta
from pathlib import Path

import features_testkit as kit
import httpx
import pytest

from vigie_localstack.settings import StackSettings
from vigie_runtime import KafkaSettings, Producer
from vigie_stores.testing import throwaway_redis

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.mark.parametrize(
    ("killed_in", "local_state"),
    [(2, "wiped"), (1, "kept")],
    ids=["rescheduled-pod", "restarted-in-place"],
)
async def test_kill_9_then_restart(
    stack: StackSettings, unique: str, tmp_path: Path, killed_in: int, local_state: str
) -> None:
    port = _free_port()
    # the restarted worker is the same member (a pod restarted in place, as the chart sets it)
    s = kit.settings(
        stack, unique, tmp_path / "state", http_port=port, group_instance_id=f"w-{unique}"
    )
    stream = kit.simulate(n_customers=30, n_terminals=50, nb_days=40, seed=11)
    want = kit.expected(stream)
    chunks = kit.chunks(kit.ordered(stream, s), timedelta(days=10))
    log = tmp_path / "worker.log"
    await kit.create_topics(s)
    worker = kit.start_subprocess(s, log)
    try:
        async with (
            throwaway_redis(s.redis) as store,
            Producer(KafkaSettings(bootstrap_servers=kit.bootstrap(stack))) as producer,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http,
        ):

            async def applied() -> int:
                try:
                    body = (await http.get("/status")).json()
                except httpx.HTTPError:
                    return 0
                return int(sum(body["applied"].values()))

            for chunk in chunks[:killed_in]:
                await kit.produce(producer, chunk)
                await kit.wait_caught_up(s, 60, http=http, log=log)
            before = await applied()
            # this chunk is in flight when the worker dies
            await kit.produce(producer, chunks[killed_in])

            async def consumed_some() -> bool:
                return await applied() > before + 100

            await kit.wait_until(consumed_some, timeout_s=30)
            worker.send_signal(signal.SIGKILL)
            assert worker.wait(10) == -signal.SIGKILL
            if local_state == "wiped":  # a new pod: only Kafka remembers
                shutil.rmtree(s.data_dir, ignore_errors=True)
            assert not await kit.caught_up(s)
            worker = kit.start_subprocess(s, log)
            for chunk in chunks[killed_in + 1 :]:
                await kit.produce(producer, chunk)
            # a liveness bound, not the property: the new worker restores every table from its
            # changelog first (all of it when its state was wiped); on a loaded 2-core CI
            # machine that took > 90 s
            await kit.wait_caught_up(s, 180, http=http, log=log)
            problems = await kit.mismatches(store, want)
            assert problems == [], problems[:20]
            status = (await http.get("/status")).json()
            assert status["late_total"] == 0
            assert status["store"] == "rocksdb"
            assert status["recovery"]["in_recovery"] is False
    finally:
        worker.kill()
        worker.wait(10)
        await kit.delete_topics(s, unique)
