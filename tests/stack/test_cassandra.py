"""The local Cassandra node through cassandra-driver: DDL, prepared writes, idempotent upserts, and
the asyncio bridge the services' store adapter uses."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from cassandra import InvalidRequest, ProtocolVersion
from cassandra.cluster import (
    EXEC_PROFILE_DEFAULT,
    Cluster,
    ExecutionProfile,
    ResponseFuture,
    Session,
)
from cassandra.policies import DCAwareRoundRobinPolicy

from vigie_localstack.settings import StackSettings

pytestmark = pytest.mark.integration

SETTINGS = StackSettings()
INSERT = (
    "INSERT INTO events (user_id, day, event_id, kind, amount_cents) VALUES (?, ?, ?, ?, ?)"
)


@pytest.fixture(scope="module")
def session() -> Iterator[Session]:
    profile = ExecutionProfile(
        # SimpleSnitch puts every node in "datacenter1".
        load_balancing_policy=DCAwareRoundRobinPolicy(local_dc="datacenter1"),
        # DDL waits for the schema to settle; generous on a 2-core machine shared with Kafka.
        request_timeout=30,
    )
    cluster = Cluster(
        [SETTINGS.host],
        port=SETTINGS.cassandra_port,
        protocol_version=ProtocolVersion.V5,
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
    )
    try:
        yield cluster.connect()
    finally:
        cluster.shutdown()


@pytest.fixture(scope="module")
def keyspace(session: Session) -> Iterator[str]:
    """A keyspace of its own per test run, dropped afterwards; the session's current keyspace, so
    the tests' statements name tables only."""
    name = f"vigie_test_{uuid.uuid4().hex[:12]}"
    session.execute(
        f"CREATE KEYSPACE {name} WITH replication = {{'class': 'SimpleStrategy', "
        "'replication_factor': 1}"
    )
    session.execute(
        f"CREATE TABLE {name}.events ("
        " user_id text, day date, event_id uuid, kind text, amount_cents bigint,"
        " PRIMARY KEY ((user_id, day), event_id))"
    )
    session.set_keyspace(name)
    try:
        yield name
    finally:
        session.execute(f"DROP KEYSPACE IF EXISTS {name}")
        assert name not in session.cluster.metadata.keyspaces


def test_node_reports_the_installed_release(session: Session) -> None:
    row = session.execute("SELECT release_version, cluster_name FROM system.local").one()
    assert row.release_version.startswith("5.0.")
    assert row.cluster_name == "vigie"


def test_prepared_insert_then_select(session: Session, keyspace: str) -> None:
    insert = session.prepare(INSERT)
    day = dt.date(2026, 1, 15)
    written = {uuid.uuid4(): (f"kind-{i}", i * 100) for i in range(5)}
    for event_id, (kind, amount) in written.items():
        session.execute(insert, ("user-a", day, event_id, kind, amount))
    # Another partition, which the partition-key read below must not return.
    session.execute(insert, ("user-b", day, uuid.uuid4(), "other", 1))

    select = session.prepare(
        "SELECT event_id, kind, amount_cents FROM events WHERE user_id = ? AND day = ?"
    )
    rows = list(session.execute(select, ("user-a", day)))

    assert {r.event_id: (r.kind, r.amount_cents) for r in rows} == written
    # Clustering order: event_id ascending within the partition.
    assert [r.event_id for r in rows] == sorted(written, key=lambda u: u.bytes)


def test_reinsert_with_same_primary_key_keeps_one_row(session: Session, keyspace: str) -> None:
    """A replayed Kafka message rewrites the same row: at-least-once becomes exactly-once."""
    insert = session.prepare(INSERT)
    key = ("user-replay", dt.date(2026, 2, 1), uuid.uuid4())
    session.execute(insert, (*key, "first", 10))
    session.execute(insert, (*key, "first", 10))
    session.execute(insert, (*key, "replayed", 20))

    rows = list(session.execute(
        "SELECT kind, amount_cents FROM events"
        " WHERE user_id = %s AND day = %s AND event_id = %s",
        key,
    ))
    count = session.execute(
        "SELECT count(*) FROM events WHERE user_id = %s AND day = %s", key[:2]
    ).one()

    assert [(r.kind, r.amount_cents) for r in rows] == [("replayed", 20)]
    assert count.count == 1


def as_asyncio(response: ResponseFuture) -> asyncio.Future[Any]:
    """The driver's future as an asyncio one; callbacks run on the driver's event-loop thread."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def set_result(rows: Any) -> None:
        if not future.done():  # cancelled by a timeout meanwhile
            future.set_result(rows)

    def set_exception(exc: BaseException) -> None:
        if not future.done():
            future.set_exception(exc)

    response.add_callbacks(
        lambda rows: loop.call_soon_threadsafe(set_result, rows),
        lambda exc: loop.call_soon_threadsafe(set_exception, exc),
    )
    return future


async def test_execute_async_bridged_to_asyncio(session: Session, keyspace: str) -> None:
    insert = session.prepare(INSERT)
    day = dt.date(2026, 3, 1)
    ids = [uuid.uuid4() for _ in range(20)]
    # Concurrent writes in flight at once, as a consumer batch would issue them.
    await asyncio.wait_for(asyncio.gather(*(
        as_asyncio(session.execute_async(insert, ("user-async", day, event_id, "click", n)))
        for n, event_id in enumerate(ids)
    )), timeout=30)

    rows = await asyncio.wait_for(as_asyncio(session.execute_async(
        "SELECT event_id, amount_cents FROM events WHERE user_id = %s AND day = %s",
        ("user-async", day),
    )), timeout=30)

    assert {r.event_id: r.amount_cents for r in rows} == {e: n for n, e in enumerate(ids)}


async def test_async_bridge_raises_server_errors(session: Session, keyspace: str) -> None:
    with pytest.raises(InvalidRequest, match="no_such_table"):
        await asyncio.wait_for(
            as_asyncio(session.execute_async("SELECT * FROM no_such_table")),
            timeout=30,
        )
