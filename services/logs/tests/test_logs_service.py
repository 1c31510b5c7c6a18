"""The logs service end to end on the real stack: Kafka in, Cassandra + lake + logs.security out.

One service run (a unique input topic, keyspace, security topic, lake folder and group) is fed
every input format and every kind of secret / PII; then each sink is read back in full and
searched for any value in clear.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pyarrow.parquet as pq  # type: ignore[import-untyped]  # no type information
import pytest

from vigie_contracts import decode
from vigie_contracts.events.logs import SecurityCategory, SecurityEvent
from vigie_contracts.topics import dead_letter
from vigie_localstack.settings import StackSettings
from vigie_logs.app import wire
from vigie_logs.settings import LogsSettings
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

pytestmark = pytest.mark.integration

KEY = "test-pseudonym-key-0123456789"
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ"
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
PEM_BODY = "MIIEowIBAAKCAQEA7bqXz1QhVtWm8Q2b4mJ0pLxq9Y"
GHP = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"

#: every value below must never be found in Cassandra, the lake or the security topic
SECRETS = {
    "bearer": "abcDEF123456ghiJKL789mno",
    "jwt": "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
    "aws": "AKIAIOSFODNN7EXAMPLE",
    "github": GHP,
    "stripe": "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
    "slack": "xoxb-2048-1024-Zr3aBcDeFgHiJkLmN",
    "url_password": "S3cretPassw0rd",
    "kv_password": "hunter2xyz",
    "json_password": "Tr0ub4dor&3",
    "json_api_key": "k-9f8e7d6c5b4a",
    "pem": PEM_BODY,
    "card": "4111111111111111",
    "card_spaced": "4111 1111 1111 1111",
    "card_amex": "378282246310005",
    "email": "alice.smith@example.com",
    "phone_e164": "+14155552671",
    "phone_fr": "06 12 34 56 78",
    "phone_us": "(415) 555-2671",
    "ipv4": "203.0.113.77",
    "ipv6": "2001:db8:85a3::8a2e:370:7334",
}
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def _fluent_bit(line: str, app: str = "checkout") -> bytes:
    return orjson.dumps(
        {
            "log": line + "\n",
            "stream": "stderr",
            "time": "2026-11-26T10:15:00.123456789Z",
            "kubernetes": {
                "pod_name": f"{app}-7d9f8-x2x1",
                "namespace_name": "payments",
                "labels": {"app": app},
            },
        }
    )


LINES: list[tuple[str, bytes]] = [
    # app JSON inside a Fluent Bit envelope, with a trace id
    (
        "",
        _fluent_bit(
            orjson.dumps(
                {
                    "level": "info",
                    "msg": "payment authorised",
                    "time": "2026-11-26T10:15:00.5Z",
                    "logger": "checkout.api",
                    "trace_id": TRACE,
                    "span_id": "00f067aa0ba902b7",
                    "amount": 42,
                }
            ).decode()
        ),
    ),
    # Vector envelope around a logfmt line
    (
        "",
        orjson.dumps(
            {
                "message": 'ts=2026-11-26T10:15:01Z level=warn msg="slow upstream" '
                f"duration=1.5s trace_id={TRACE} path=/v1/pay?token={SECRETS['bearer']}",
                "timestamp": "2026-11-26T10:15:01.9Z",
                "source_type": "kubernetes_logs",
                "host": "node-3",
                "kubernetes": {"pod_name": "gateway-1", "container_name": "gateway"},
            }
        ),
    ),
    # app JSON with secrets in fields
    (
        "accounts",
        orjson.dumps(
            {
                "timestamp": "2026-11-26T10:15:02Z",
                "level": "ERROR",
                "message": f"token refresh failed for {SECRETS['email']}",
                "password": SECRETS["json_password"],
                "api_key": SECRETS["json_api_key"],
                "config": {"dsn": f"postgres://app:{SECRETS['url_password']}@db:5432/accounts"},
                "exception": {"type": "ValueError"},
            }
        ),
    ),
    # logfmt with key=value secrets
    (
        "accounts",
        b'time=2026-11-26T10:15:03Z level=info msg="user created" '
        + f"password={SECRETS['kv_password']} phone={SECRETS['phone_e164']}".encode(),
    ),
    # Python logging formats
    (
        "ledger",
        b"2026-11-26 10:15:04,120 - ledger.db - ERROR - charge failed for card "
        + SECRETS["card_spaced"].encode()
        + b" order 1234567890123457\n"
        b'Traceback (most recent call last):\n  File "/app/src/ledger/db.py",'
        b" line 88, in charge\n    cur.execute(q)\npsycopg.OperationalError: connection refused",
    ),
    ("ledger", b"WARNING:ledger.jobs:retrying job 42 for " + SECRETS["phone_fr"].encode()),
    (
        "ledger",
        b"2026-11-26 10:15:05,001 INFO ledger.keys: loaded -----BEGIN RSA PRIVATE KEY-----\n"
        + PEM_BODY.encode()
        + b"\n-----END RSA PRIVATE KEY-----",
    ),
    # nginx and Apache access logs
    (
        "edge",
        f'{SECRETS["ipv4"]} - - [26/Nov/2026:10:15:06 +0000] "GET /v1/cards?email='
        f'{SECRETS["email"]} HTTP/1.1" 200 512 "-" "curl/8.5.0" 0.042'.encode(),
    ),
    (
        "edge",
        f'{SECRETS["ipv6"]} - bob [26/Nov/2026:11:15:06 +0100] "POST /admin/users HTTP/1.1" 403 '
        '18 "https://admin.example.org/" "Mozilla/5.0 (X11; Linux x86_64)"'.encode(),
    ),
    # Java stack trace over several lines, with secrets in the message
    (
        "payments-java",
        b"2026-11-26 10:15:07.321 [http-nio-8080-exec-3] ERROR c.a.p.PaymentController - "
        b"call failed Authorization: Bearer "
        + SECRETS["bearer"].encode()
        + b"\njava.lang.IllegalStateException: card "
        + SECRETS["card"].encode()
        + b" declined\n\tat com.acme.pay.PaymentController.pay(PaymentController.java:88)\n"
        b"\tat com.acme.pay.Main.main(Main.java:10)\nCaused by: java.io.IOException: reset\n"
        b"\t... 2 more",
    ),
    # plain text with API keys, a JWT, a phone and an Amex card
    (
        "misc",
        f"deploy used {SECRETS['aws']} {SECRETS['github']} {SECRETS['stripe']} "
        f"{SECRETS['slack']} jwt={JWT} call {SECRETS['phone_us']} amex "
        f"{SECRETS['card_amex']}".encode(),
    ),
    # security events
    (
        "auth",
        orjson.dumps(
            {
                "time": "2026-11-26T10:15:08Z",
                "level": "warn",
                "msg": f"login failed for user {SECRETS['email']} from {SECRETS['ipv4']}",
                "password": SECRETS["json_password"],
            }
        ),
    ),
    (
        "auth",
        b'time=2026-11-26T10:15:09Z level=info msg="login succeeded" user=u-1001 '
        + f"client_ip={SECRETS['ipv4']}".encode(),
    ),
    ("auth", b"2026-11-26 10:15:10,000 INFO audit: role admin granted to user=u-1002 by u-1"),
    ("auth", b"2026-11-26 10:15:11,000 WARNING authz: access denied to /ledger for user=u-1003"),
    ("auth", b'{"time":"2026-11-26T10:15:12Z","level":"info","logger":"audit","msg":"export run"}'),
]
SECURITY_EXPECTED = {
    SecurityCategory.AUTH_FAILURE,
    SecurityCategory.AUTH_SUCCESS,
    SecurityCategory.PRIVILEGE_CHANGE,
    SecurityCategory.ACCESS_DENIED,
    SecurityCategory.AUDIT,
}
BAD: list[tuple[str, bytes]] = [
    ("bad", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8),  # binary → dead letter
    ("bad", b""),  # empty → dead letter
    ("bad", b'level=error msg="caf\xe9 \xff broken" time=2026-11-26T10:15:13Z'),  # bad UTF-8
    ("bad", b'time=yesterday-ish level=info msg="when?"'),  # unparseable time
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Env:
    stack: StackSettings
    unique: str
    tmp: Path
    bootstrap: str
    topics: TopicFactory
    input_topic: str
    security_topic: str
    dlq_topic: str
    keyspace: str
    settings: LogsSettings


@asynccontextmanager
async def environment(
    stack: StackSettings, unique: str, tmp: Path, **extra: Any
) -> AsyncIterator[Env]:
    bootstrap = f"{stack.host}:{stack.kafka_port}"
    service = f"logs-t{unique}"
    async with topic_factory(bootstrap) as topics:
        input_topic = (
            await topics.create(f"t.logs.raw.{unique}", 2, **{"max.message.bytes": str(12 * 2**20)})
        ).name
        security_topic = (await topics.create(f"t.logs.security.{unique}", 1)).name
        dlq_topic = (await topics.create(dead_letter(service).name, 1)).name
        keyspace = f"t_logs_{unique}"
        settings = LogsSettings(
            kafka=KafkaSettings(bootstrap_servers=bootstrap, batch_timeout_ms=50, linger_ms=1),
            observability=ObservabilitySettings(service_name=service, http_port=_free_port()),
            input_topic=input_topic,
            security_topic=security_topic,
            cassandra=CassandraConfig(contact_points=(stack.host,), port=stack.cassandra_port),
            keyspace=keyspace,
            lake=LakeConfig(url=str(tmp / "lake")),
            pseudonym_key=KEY,  # type: ignore[arg-type]  # pydantic coerces str → SecretStr
            **extra,
        )
        try:
            yield Env(
                stack,
                unique,
                tmp,
                bootstrap,
                topics,
                input_topic,
                security_topic,
                dlq_topic,
                keyspace,
                settings,
            )
        finally:
            store = await CassandraStore.open(settings.cassandra)
            async with store:
                await store.drop_keyspace(keyspace)


@asynccontextmanager
async def service(env: Env) -> AsyncIterator[None]:
    async with serving(env.settings, wire):
        yield


async def produce(env: Env, lines: list[tuple[str, bytes]]) -> None:
    producer = Producer(
        KafkaSettings(bootstrap_servers=env.bootstrap, linger_ms=0), max_request_size=12 * 2**20
    )
    async with producer:
        for key, value in lines:
            await producer.send_raw(env.input_topic, value, key=key or None)


async def count_logs(store: CassandraStore, keyspace: str) -> int:
    rows = await store.execute(f"SELECT count(*) AS n FROM {keyspace}.logs")  # noqa: S608 - identifiers validated, values bound
    return int(rows[0]["n"])


def _clear_values_in(blob: str) -> list[str]:
    return [name for name, value in SECRETS.items() if value in blob]


async def test_every_format_stored_redacted_queryable_and_security_events_published(
    stack: StackSettings, unique: str, tmp_path: Path
) -> None:
    async with environment(stack, unique, tmp_path) as env:
        async with service(env):
            await produce(env, LINES + BAD)
            store = await CassandraStore.open(env.settings.cassandra)
            async with store:
                expected = len(LINES) + 2  # the two dead letters are not stored

                async def all_stored() -> bool:
                    return await count_logs(store, env.keyspace) >= expected

                await eventually(all_stored, timeout_s=60, every_s=0.3)
                port = env.settings.observability.http_port
                async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                    api = await _query_api(client)
                cassandra_rows = []
                for table in ("logs", "logs_by_trace", "logs_by_fingerprint"):
                    cassandra_rows.extend(
                        await store.execute(f"SELECT * FROM {env.keyspace}.{table}")  # noqa: S608 - identifiers validated, values bound
                    )
        # the service stopped: the lake writer flushed its files on the way out
        lake_values = [
            value
            for path in sorted((tmp_path / "lake").rglob("*.parquet"))
            if "_tmp" not in path.parts
            for value in pq.read_table(path).column("value").to_pylist()
        ]
        security = await collect(env.bootstrap, env.security_topic, 50, timeout_s=5)
        dead = await collect(env.bootstrap, env.dlq_topic, 2, timeout_s=10)

    logs_rows = [r for r in cassandra_rows if "message" in r and "day" not in r]
    by_message = {row["message"]: row for row in logs_rows}
    assert len(logs_rows) == len(LINES) + 2

    # nothing in clear anywhere
    assert _clear_values_in(repr(cassandra_rows)) == []
    assert len(lake_values) == len(LINES) + 2
    assert _clear_values_in(repr([v.decode() for v in lake_values])) == []
    assert _clear_values_in(repr([m.value for m in security])) == []
    # every kind was recognised and counted
    kinds: dict[str, int] = {}
    for row in logs_rows:
        for kind, n in (row["redactions"] or {}).items():
            kinds[kind] = kinds.get(kind, 0) + n
    for kind in (
        "bearer",
        "jwt",
        "api_key",
        "url_password",
        "secret",
        "private_key",
        "card",
        "email",
        "phone",
        "ipv4",
        "ipv6",
    ):
        assert kinds.get(kind, 0) > 0, (kind, kinds)
    # an order id that is not a card number stays
    assert any("1234567890123457" in row["message"] for row in logs_rows)

    # formats and normalised fields
    formats = {row["format"] for row in logs_rows}
    assert {"json", "logfmt", "python", "access", "logback", "text"} <= formats
    authorised = by_message["payment authorised"]
    assert authorised["service"] == "checkout"
    assert authorised["host"] == "checkout-7d9f8-x2x1"
    assert authorised["trace_id"] == TRACE and authorised["span_id"] == "00f067aa0ba902b7"
    assert authorised["logger"] == "checkout.api"
    slow = by_message["slow upstream"]
    assert slow["service"] == "gateway" and slow["level"] == "warning"
    assert slow["http_duration_ms"] == 1500.0
    access = next(r for r in logs_rows if r["format"] == "access" and r["http_status"] == 200)
    assert access["http_method"] == "GET" and access["http_remote"].startswith("ip:")
    assert access["http_duration_ms"] == pytest.approx(42.0)
    java = next(r for r in logs_rows if r["format"] == "logback")
    assert java["exception_type"] == "java.lang.IllegalStateException"
    assert java["fingerprint"] and "PaymentController.java" in java["attributes"]["stack_trace"]
    python_error = next(r for r in logs_rows if r["exception_type"] == "psycopg.OperationalError")
    assert python_error["level"] == "error" and python_error["logger"] == "ledger.db"

    # bad input: kept with flags, or dead-lettered with the reason
    flags = {flag for row in logs_rows for flag in (row["flags"] or ())}
    assert {"invalid_utf8", "ingest_time"} <= flags
    assert len(dead) == 2
    reasons = {dict(m.headers).get("vigie.dlq.error", b"").decode() for m in dead}
    assert any("binary" in r for r in reasons) and any("empty" in r for r in reasons), reasons

    # security events: every category, keyed by account or IP pseudonym, already redacted
    events = [decode(m.value) for m in security]
    payloads = [e.payload for e in events]
    assert all(isinstance(p, SecurityEvent) for p in payloads)
    categories = {p.category for p in payloads if isinstance(p, SecurityEvent)}
    assert SECURITY_EXPECTED <= categories, categories
    failure = next(
        p
        for p in payloads
        if isinstance(p, SecurityEvent)
        and p.category is SecurityCategory.AUTH_FAILURE
        and p.service == "auth"
    )
    assert failure.account is not None and failure.account.startswith("[email:")
    assert failure.source_ip_pseudonym is not None and failure.source_ip_pseudonym.startswith("ip:")
    keys = {m.key for m in security}
    assert b"u-1001" in keys

    # the query API
    assert api["service_count"] >= 3 and api["errors_only"] == {"error"}
    assert api["trace_count"] == 2
    assert api["fingerprint_count"] == 1


async def _query_api(client: httpx.AsyncClient) -> dict[str, Any]:
    # one ledger line has no timestamp and is stamped at ingest time: the window must reach now
    end = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    window = {"start": "2026-11-26T00:00:00Z", "end": end}
    ledger = (await client.get("/v1/logs", params={"service": "ledger", **window})).json()
    errors = (
        await client.get("/v1/logs", params={"service": "ledger", "level": "error", **window})
    ).json()
    trace = (await client.get(f"/v1/logs/traces/{TRACE.upper()}")).json()
    fingerprint = errors["records"][0]["fingerprint"]
    by_fp = (await client.get(f"/v1/logs/errors/{fingerprint}", params=window)).json()
    bad = await client.get("/v1/logs", params={"service": "x", "level": "loud"})
    assert bad.status_code == 422
    return {
        "service_count": ledger["count"],
        "errors_only": {r["level"] for r in errors["records"]},
        "trace_count": trace["count"],
        "fingerprint_count": by_fp["count"],
    }


async def test_ten_megabyte_record_is_truncated_and_a_replay_overwrites(
    stack: StackSettings, unique: str, tmp_path: Path
) -> None:
    huge = (
        b'{"level":"error","msg":"dump password='
        + SECRETS["kv_password"].encode()
        + b" "
        + b"z" * (10 * 2**20)
        + b'"}'
    )
    lines = [
        ("big", huge),
        ("auth", b'time=2026-11-26T10:15:09Z level=info msg="login succeeded" user=u-9'),
        ("api", b'time=2026-11-26T10:15:10Z level=info msg="ok"'),
    ]
    async with environment(stack, unique, tmp_path, max_record_bytes=256 * 1024) as env:
        store = await CassandraStore.open(env.settings.cassandra)
        async with store:
            async with service(env):
                await produce(env, lines)

                async def stored() -> bool:
                    return await count_logs(store, env.keyspace) >= len(lines)

                await eventually(stored, timeout_s=60, every_s=0.3)
            rows = await store.execute(
                f"SELECT * FROM {env.keyspace}.logs WHERE service = 'big' ALLOW FILTERING"  # noqa: S608 - identifiers validated, values bound
            )
            # a second consumer group reads everything again: same ids, same rows
            replay = dataclasses_replace_group(env, f"{env.settings.group_id}-replay")
            async with service(replay):

                async def replayed() -> bool:
                    done = await committed(
                        env.bootstrap, replay.settings.group_id, env.input_topic, 2
                    )
                    return sum(max(o, 0) for o in done) == len(lines)

                await eventually(replayed, timeout_s=60, every_s=0.3)
            assert await count_logs(store, env.keyspace) == len(lines)
        security = await collect(env.bootstrap, env.security_topic, 10, timeout_s=5)

    (row,) = rows
    assert "truncated" in row["flags"] and "ingest_time" in row["flags"]
    assert len(row["message"].encode()) <= 256 * 1024
    assert SECRETS["kv_password"] not in row["message"] and "[REDACTED:secret]" in row["message"]
    assert row["level"] == "error"  # the broken JSON's level is lost: the raw text says "error"
    # the replay republished the security event under the same event id (consumers dedupe)
    ids = [decode(m.value).event_id for m in security]
    assert len(ids) == 2 and len(set(ids)) == 1


def dataclasses_replace_group(env: Env, group_id: str) -> Env:
    kafka = env.settings.kafka.model_copy(update={"group_id": group_id})
    obs = env.settings.observability.model_copy(update={"http_port": _free_port()})
    # commits wait for the lake's files to be final: let them roll while the replay runs
    lake = env.settings.lake.model_copy(update={"max_file_age": timedelta(seconds=1)})
    settings = env.settings.model_copy(
        update={"kafka": kafka, "observability": obs, "lake": lake, "lake_roll_interval_s": 0.3}
    )
    return Env(**{**env.__dict__, "settings": settings})


def _final_lake_offsets(lake: Path) -> list[tuple[int, int]]:
    """(partition, offset) of every row of the final files (``_tmp`` holds the open ones)."""
    found: list[tuple[int, int]] = []
    for path in lake.rglob("*.parquet"):
        if "_tmp" in path.parts:
            continue
        table = pq.read_table(path)
        found.extend(
            zip(
                table.column("partition").to_pylist(),
                table.column("offset").to_pylist(),
                strict=True,
            )
        )
    return sorted(found)


async def test_commits_never_pass_what_the_lake_made_final(
    stack: StackSettings, unique: str, tmp_path: Path
) -> None:
    good = [
        (f"svc{i}", f'time=2026-11-26T10:15:{i:02d}Z level=info msg="m{i}"'.encode())
        for i in range(6)
    ]
    bad = [
        ("svc0", b""),
        ("svc1", b""),
    ]  # dead-lettered, never in the lake, last of their partition
    async with environment(stack, unique, tmp_path) as env:  # files roll after 10 min
        store = await CassandraStore.open(env.settings.cassandra)
        async with store:

            async def offsets() -> list[int]:
                return await committed(env.bootstrap, env.settings.group_id, env.input_topic, 2)

            async with service(env):
                await produce(env, good + bad)

                async def stored() -> bool:
                    return await count_logs(store, env.keyspace) >= len(good)

                await eventually(stored, timeout_s=60, every_s=0.3)
                await asyncio.sleep(1.5)  # idle polls ask the gate again: still shut
                # stored in Cassandra, yet nothing committed: the lake files are still open
                assert _final_lake_offsets(tmp_path / "lake") == []
                assert await offsets() == [-1, -1]
            # stopping completed the files, then committed all, the dead letters after them too
            in_lake = _final_lake_offsets(tmp_path / "lake")
            assert len(in_lake) == len(good)
            done = await offsets()
            assert sum(done) == len(good) + len(bad)
            for partition, next_offset in enumerate(done):
                last_final = max((o for p, o in in_lake if p == partition), default=-1)
                assert next_offset >= last_final + 1
