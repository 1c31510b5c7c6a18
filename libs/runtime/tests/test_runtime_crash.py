"""``kill -9`` of a consumer in the middle of 20k messages, then a restart: every message is
written exactly once in effect (idempotent upserts keyed by event id absorb re-deliveries)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import redis.asyncio as redis
from runtime_testkit import BOOTSTRAP, STACK, producer, topics

from vigie_contracts import encode
from vigie_runtime.testing import committed, sample_envelope

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TOTAL = 20_000
WORKER = Path(__file__).with_name("runtime_kill_worker.py")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _start(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(  # noqa: S603 - our own worker script
            [sys.executable, str(WORKER)], env=env, stdout=out, stderr=subprocess.STDOUT
        )


async def test_kill_9_mid_stream_then_restart_writes_each_message_once(
    unique: str, tmp_path: Path
) -> None:
    prefix = f"vigie-test-runtime-{unique}"
    store = redis.Redis(host=STACK.host, port=STACK.redis_port)
    port = _free_port()
    async with topics() as factory, producer() as p:
        src = await factory.create(f"rt-crash-{unique}", partitions=3)
        ids = [f"{unique}-{i}" for i in range(TOTAL)]
        futures = []
        for i, event_id in enumerate(ids):
            value = encode(sample_envelope(i, event_id=event_id))
            futures.append(await p.enqueue(src, value, key=f"k{i % 97}"))
        await asyncio.gather(*futures)

        env = {
            **os.environ,
            "VIGIE_WORKER_OBSERVABILITY__SERVICE_NAME": f"crash-{unique}",
            "VIGIE_WORKER_OBSERVABILITY__HTTP_HOST": "127.0.0.1",
            "VIGIE_WORKER_OBSERVABILITY__HTTP_PORT": str(port),
            "VIGIE_WORKER_OBSERVABILITY__LOG_LEVEL": "warning",
            "VIGIE_WORKER_KAFKA__BOOTSTRAP_SERVERS": BOOTSTRAP,
            "VIGIE_WORKER_KAFKA__BATCH_MAX_RECORDS": "200",
            # the killed member must leave the group quickly for the restart to get partitions
            "VIGIE_WORKER_KAFKA__SESSION_TIMEOUT_MS": "6000",
            "VIGIE_WORKER_REDIS_URL": f"redis://{STACK.host}:{STACK.redis_port}/0",
            "VIGIE_WORKER_TOPIC": src.name,
            "VIGIE_WORKER_KEY_PREFIX": prefix,
            "VIGIE_WORKER_DELAY_S": "0.02",
        }
        group = f"crash-{unique}"
        try:
            log = tmp_path / "workers.log"
            first = _start(env, log)
            deadline = time.monotonic() + 60
            written_at_kill = 0
            while time.monotonic() < deadline:
                written_at_kill = int(await store.get(f"{prefix}:writes") or 0)
                if written_at_kill >= 5000 or first.poll() is not None:
                    break
                await asyncio.sleep(0.01)
            first.send_signal(signal.SIGKILL)
            first.wait(10)
            assert first.returncode == -signal.SIGKILL, log.read_text()
            distinct_at_kill = await store.hlen(f"{prefix}:events")
            assert 0 < distinct_at_kill < TOTAL, "the kill must land in the middle of the stream"

            second = _start(env, log)
            try:
                deadline = time.monotonic() + 90
                while await store.hlen(f"{prefix}:events") < TOTAL:
                    assert time.monotonic() < deadline, "the restarted consumer did not finish"
                    assert second.poll() is None, log.read_text()
                    await asyncio.sleep(0.1)
                async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
                    ready = await http.get("/health/ready")
                    scraped = (await http.get("/metrics")).text
                assert ready.status_code == 200, ready.text
                assert "vigie_messages_processed_total" in scraped
                assert "vigie_consumer_lag" in scraped
            finally:
                second.send_signal(signal.SIGTERM)  # graceful: finish, commit, close
                second.wait(30)
            assert second.returncode == 0, log.read_text()

            distinct = await store.hlen(f"{prefix}:events")
            writes = int(await store.get(f"{prefix}:writes") or 0)
            stored_ids = {_text(k) for k in await store.hkeys(f"{prefix}:events")}
            assert distinct == TOTAL and stored_ids == set(ids)
            # re-deliveries after the crash happened (or at worst none): tolerated either way
            assert writes >= TOTAL
            print(
                f"kill at {written_at_kill} writes; total writes {writes}, "
                f"re-deliveries {writes - TOTAL}, distinct {distinct}"
            )
            offsets = await committed(BOOTSTRAP, group, src.name, partitions=3)
            assert sum(offsets) == TOTAL  # the graceful stop committed everything
        finally:
            await store.delete(f"{prefix}:events", f"{prefix}:writes")
            await store.aclose()
