"""Cassandra through cassandra-driver, bridged to asyncio.

The driver runs its own I/O thread (libev) and completes ``ResponseFuture``s there; each one is
handed to the event loop with ``call_soon_threadsafe``, so awaiting a query never blocks the loop.
Statements are prepared once and cached. Every statement is marked idempotent unless the caller
says otherwise (an LWT or a counter update), which lets the retry policy below retry timed-out
writes: vigie's writes are upserts keyed by the event, so applying one twice changes nothing.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Literal, Self

from cassandra import (
    AlreadyExists,
    AuthenticationFailed,
    ConsistencyLevel,
    CoordinationFailure,
    DriverException,
    OperationTimedOut,
    RequestValidationException,
    Timeout,
    Unauthorized,
    Unavailable,
)
from cassandra import protocol as cproto
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import (
    EXEC_PROFILE_DEFAULT,
    Cluster,
    ExecutionProfile,
    NoHostAvailable,
    ResponseFuture,
    Session,
)
from cassandra.connection import ConnectionException
from cassandra.policies import DCAwareRoundRobinPolicy, RetryPolicy, TokenAwarePolicy
from cassandra.query import PreparedStatement, SimpleStatement, dict_factory
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from .closing import ClosedOnExit
from .errors import StoreClosed, StoreConflict, StoreError, StoreRejected, StoreUnavailable

_STORE = "cassandra"
_IDENTIFIER = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,47}$")

Row = dict[str, Any]
Params = Sequence[Any] | Mapping[str, Any]


class CassandraConfig(BaseModel):
    """Contact points, credentials, timeouts and the concurrency bounds of one session."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    contact_points: tuple[str, ...] = ("127.0.0.1",)
    port: int = 9042
    local_dc: str | None = Field(default=None, description="None: the first contact point's DC")
    username: str | None = None
    password: SecretStr | None = None
    consistency: Literal["ONE", "LOCAL_ONE", "QUORUM", "LOCAL_QUORUM", "ALL"] = "LOCAL_QUORUM"
    connect_timeout: float = Field(default=5.0, gt=0, description="seconds")
    request_timeout: float = Field(default=10.0, gt=0, description="seconds, client side")
    schema_timeout: float = Field(default=60.0, gt=0, description="DDL and schema agreement")
    max_in_flight: int = Field(default=512, ge=1, description="requests in flight per session")
    concurrency: int = Field(default=64, ge=1, description="default width of execute_many")
    timeout_retries: int = Field(default=2, ge=0, description="per idempotent statement")
    protocol_version: int = Field(default=5, ge=3, description="native protocol (5: Cassandra 4+)")


class _IdempotentRetryPolicy(RetryPolicy):  # type: ignore[misc]  # the driver is untyped
    """Retry server-side timeouts of idempotent statements; never retry the others.

    The driver's default retries a timed-out write only for batch logs, because it cannot know a
    write is safe to repeat; ours are marked idempotent, so they are.
    """

    def __init__(self, retries: int) -> None:
        self.retries = retries

    def on_read_timeout(
        self,
        query: Any,
        consistency: Any,
        required_responses: int,
        received_responses: int,
        data_retrieved: bool,
        retry_num: int,
    ) -> tuple[Any, Any]:
        if retry_num < self.retries:
            return self.RETRY, consistency
        return self.RETHROW, None

    def on_write_timeout(
        self,
        query: Any,
        consistency: Any,
        write_type: Any,
        required_responses: int,
        received_responses: int,
        retry_num: int,
    ) -> tuple[Any, Any]:
        if retry_num < self.retries and getattr(query, "is_idempotent", False):
            return self.RETRY, consistency
        return self.RETHROW, None

    def on_unavailable(
        self,
        query: Any,
        consistency: Any,
        required_replicas: int,
        alive_replicas: int,
        retry_num: int,
    ) -> tuple[Any, Any]:
        # Another coordinator may see more replicas alive; once is enough to find out.
        return (self.RETRY_NEXT_HOST, consistency) if retry_num == 0 else (self.RETHROW, None)

    def on_request_error(
        self, query: Any, consistency: Any, error: Exception, retry_num: int
    ) -> tuple[Any, Any]:
        if retry_num < self.retries and getattr(query, "is_idempotent", False):
            return self.RETRY_NEXT_HOST, consistency
        return self.RETHROW, None


@contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except (
        OperationTimedOut,
        Timeout,
        Unavailable,
        NoHostAvailable,
        ConnectionException,
        cproto.OverloadedErrorMessage,
        cproto.IsBootstrappingErrorMessage,
        cproto.UnavailableErrorMessage,
        OSError,
        TimeoutError,
    ) as exc:
        raise StoreUnavailable(str(exc) or type(exc).__name__, store=_STORE) from exc
    except AlreadyExists as exc:
        raise StoreConflict(str(exc), store=_STORE) from exc
    except (
        RequestValidationException,
        cproto.RequestValidationException,
        Unauthorized,
        AuthenticationFailed,
    ) as exc:
        raise StoreRejected(str(exc), store=_STORE) from exc
    except (CoordinationFailure, DriverException, cproto.ErrorMessage) as exc:
        raise StoreError(str(exc), store=_STORE) from exc


def _resolve(future: asyncio.Future[list[Row]], rows: list[Row]) -> None:
    if not future.done():
        future.set_result(rows)


def _fail(future: asyncio.Future[list[Row]], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


class _Bridge:
    """Collects every page of a ``ResponseFuture`` on the driver's thread, then wakes the loop."""

    def __init__(self, response: ResponseFuture, loop: asyncio.AbstractEventLoop) -> None:
        self.response = response
        self.loop = loop
        self.rows: list[Row] = []
        self.future: asyncio.Future[list[Row]] = loop.create_future()
        response.add_callbacks(callback=self._on_page, errback=self._on_error)

    def _on_page(self, rows: list[Row] | None) -> None:
        if rows:
            self.rows.extend(rows)
        if self.response.has_more_pages:
            self.response.start_fetching_next_page()  # calls _on_page again
        else:
            self.loop.call_soon_threadsafe(_resolve, self.future, self.rows)

    def _on_error(self, exc: BaseException) -> None:
        self.loop.call_soon_threadsafe(_fail, self.future, exc)


def _bind(prepared: PreparedStatement, params: Params | None, idempotent: bool) -> Any:
    try:
        bound = prepared.bind(params if params is not None else ())
    except (TypeError, ValueError, KeyError, OverflowError) as exc:
        # A value that does not fit its column: the record is bad, retrying cannot help.
        raise StoreRejected(f"cannot bind {params!r}: {exc}", store=_STORE) from exc
    bound.is_idempotent = idempotent
    return bound


class _Chain:
    """Runs bound statements ``width`` at a time on the driver's thread; one future at the end.

    Like the driver's ``execute_concurrent``, without a thread blocked waiting for it.
    """

    # Completions that arrive while a request is being sent run inline; past this depth the
    # next request goes through the driver's executor instead, so the stack stays shallow.
    MAX_DEPTH = 32

    def __init__(
        self,
        session: Session,
        bind: Callable[[Any], Any],
        pending: Iterator[Any],
        seconds: float,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.session = session
        self.bind = bind
        self.pending = pending
        self.seconds = seconds
        self.loop = loop
        self.future: asyncio.Future[int] = loop.create_future()
        self.lock = threading.Lock()
        self.local = threading.local()
        self.in_flight = 0
        self.done = 0
        self.failure: BaseException | None = None
        self.finished = False

    def start(self, width: int) -> None:
        for _ in range(width):
            if not self._send():
                break
        self._maybe_finish()

    def _send(self) -> bool:
        with self.lock:
            if self.failure is not None:
                return False
            try:
                item = next(self.pending)
            except StopIteration:
                return False
            except BaseException as exc:  # the caller's iterator failed
                self.failure = exc
                return False
            self.in_flight += 1
        try:
            response = self.session.execute_async(self.bind(item), timeout=self.seconds)
        except BaseException as exc:  # bad parameters, or the session is shutting down
            self._on_error(exc)
            return False
        response.add_callbacks(callback=self._on_done, errback=self._on_error)
        return True

    def _on_done(self, _rows: Any) -> None:
        with self.lock:
            self.in_flight -= 1
            self.done += 1
        depth = getattr(self.local, "depth", 0)
        if depth >= self.MAX_DEPTH:
            self.session.submit(self._send_next)
            return
        self.local.depth = depth + 1
        try:
            self._send_next()
        finally:
            self.local.depth = depth

    def _send_next(self) -> None:
        self._send()
        self._maybe_finish()

    def _on_error(self, exc: BaseException) -> None:
        with self.lock:
            self.in_flight -= 1
            if self.failure is None:
                self.failure = exc
        self._maybe_finish()

    def _maybe_finish(self) -> None:
        with self.lock:
            if self.finished or self.in_flight > 0:
                return
            self.finished = True
            failure, done = self.failure, self.done
        if failure is None:
            self.loop.call_soon_threadsafe(_settle, self.future, done, None)
        else:
            self.loop.call_soon_threadsafe(_settle, self.future, done, failure)


def _settle(future: asyncio.Future[int], done: int, failure: BaseException | None) -> None:
    if future.done():
        return
    if failure is None:
        future.set_result(done)
    else:
        future.set_exception(failure)


def _cql_literal(value: str | int) -> str:
    return str(value) if isinstance(value, int) else "'" + value.replace("'", "''") + "'"


def replication_cql(replication: Mapping[str, str | int]) -> str:
    """``{'class': 'SimpleStrategy', 'replication_factor': 1}`` as a CQL map literal."""
    pairs = (f"{_cql_literal(k)}: {_cql_literal(v)}" for k, v in replication.items())
    return "{" + ", ".join(pairs) + "}"


SINGLE_NODE: Mapping[str, str | int] = {"class": "SimpleStrategy", "replication_factor": 1}


class CassandraStore(ClosedOnExit):
    """One driver session used from asyncio. Open with ``await CassandraStore.open(config)``."""

    def __init__(self, config: CassandraConfig, cluster: Cluster, session: Session) -> None:
        self.config = config
        self._cluster = cluster
        self._session: Session | None = session
        self._prepared: dict[str, asyncio.Task[PreparedStatement]] = {}
        self._in_flight = asyncio.Semaphore(config.max_in_flight)

    @classmethod
    async def open(cls, config: CassandraConfig) -> Self:
        auth = None
        if config.username is not None:
            password = config.password.get_secret_value() if config.password else ""
            auth = PlainTextAuthProvider(username=config.username, password=password)
        profile = ExecutionProfile(
            load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy(config.local_dc)),
            retry_policy=_IdempotentRetryPolicy(config.timeout_retries),
            consistency_level=ConsistencyLevel.name_to_value[config.consistency],
            request_timeout=config.request_timeout,
            row_factory=dict_factory,
        )
        cluster = Cluster(
            contact_points=list(config.contact_points),
            port=config.port,
            auth_provider=auth,
            connect_timeout=config.connect_timeout,
            control_connection_timeout=config.connect_timeout,
            max_schema_agreement_wait=int(config.schema_timeout),
            protocol_version=config.protocol_version,
            execution_profiles={EXEC_PROFILE_DEFAULT: profile},
        )
        try:
            with _translated():
                # connect() blocks (control connection, topology, pools): keep it off the loop.
                session = await asyncio.to_thread(cluster.connect)
        except BaseException:
            await asyncio.to_thread(cluster.shutdown)
            raise
        return cls(config, cluster, session)

    @property
    def session(self) -> Session:
        """The driver session, for what this adapter does not wrap."""
        if self._session is None:
            raise StoreClosed("used after close()", store=_STORE)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            self._session = None
            for task in self._prepared.values():
                task.cancel()
            await asyncio.to_thread(self._cluster.shutdown)

    async def ping(self) -> None:
        await self.execute("SELECT release_version FROM system.local")

    async def _run(self, statement: Any, seconds: float | None = None) -> list[Row]:
        session = self.session
        async with self._in_flight:
            with _translated():
                response = session.execute_async(
                    statement, timeout=seconds or self.config.request_timeout
                )
                return await _Bridge(response, asyncio.get_running_loop()).future

    async def prepare(self, cql: str) -> PreparedStatement:
        """The prepared statement for ``cql``: prepared once per session, shared by callers."""
        task = self._prepared.get(cql)
        if task is None:
            task = asyncio.create_task(self._prepare(cql))
            self._prepared[cql] = task
        try:
            return await asyncio.shield(task)
        except BaseException:
            if task.done() and (task.cancelled() or task.exception() is not None):
                self._prepared.pop(cql, None)  # a later call may succeed (server back)
            raise

    async def _prepare(self, cql: str) -> PreparedStatement:
        session = self.session
        with _translated():
            prepared: PreparedStatement = await asyncio.to_thread(session.prepare, cql)
        return prepared

    async def execute(
        self, cql: str, params: Params | None = None, *, idempotent: bool = True
    ) -> list[Row]:
        """Run a prepared statement and return every row (all pages) as dicts.

        Pass ``idempotent=False`` for statements that must not be retried after a timeout:
        lightweight transactions, counter updates, list appends.
        """
        prepared = await self.prepare(cql)
        return await self._run(_bind(prepared, params, idempotent))

    async def execute_many(
        self,
        cql: str,
        params: Iterable[Params],
        *,
        idempotent: bool = True,
        concurrency: int | None = None,
    ) -> int:
        """Run ``cql`` once per parameter set, at most ``concurrency`` at a time; returns the count.

        The requests chain on the driver's own thread (each completion starts the next), and
        the event loop is woken once at the end: the asyncio bridge costs nothing per row. The
        first failure stops new requests and is raised once those in flight are done; with
        idempotent statements the whole call can simply be retried.
        """
        prepared = await self.prepare(cql)
        width = min(concurrency or self.config.concurrency, self.config.max_in_flight)
        chain = _Chain(
            self.session,
            lambda item: _bind(prepared, item, idempotent),
            iter(params),
            self.config.request_timeout,
            asyncio.get_running_loop(),
        )
        chain.start(width)
        with _translated():
            return await chain.future

    async def execute_schema(self, cql: str) -> None:
        """Run one DDL statement (not prepared) with the schema timeout."""
        await self._run(SimpleStatement(cql), self.config.schema_timeout)

    async def ensure_schema(
        self,
        keyspace: str,
        statements: Sequence[str] = (),
        *,
        replication: Mapping[str, str | int] = SINGLE_NODE,
    ) -> None:
        """Create the keyspace and run ``statements`` in order; safe to call again and again.

        Every statement must be conditional (``IF NOT EXISTS`` / ``IF EXISTS``) so a second run,
        or a second replica of the service starting at the same time, changes nothing. Returns
        once every node agrees on the schema, so prepared statements see the new tables.
        """
        if not _IDENTIFIER.match(keyspace):
            raise ValueError(f"not a plain CQL identifier: {keyspace!r}")
        for cql in statements:
            if not re.search(r"\bIF\s+(NOT\s+)?EXISTS\b", cql, re.IGNORECASE):
                raise ValueError(f"schema statement is not conditional (IF NOT EXISTS): {cql!r}")
        await self.execute_schema(
            f"CREATE KEYSPACE IF NOT EXISTS {keyspace} "
            f"WITH replication = {replication_cql(replication)}"
        )
        for cql in statements:
            await self.execute_schema(cql)
        await self.wait_for_schema_agreement()

    async def wait_for_schema_agreement(self) -> None:
        control = self._cluster.control_connection
        with _translated():
            agreed = await asyncio.to_thread(
                control.wait_for_schema_agreement, wait_time=self.config.schema_timeout
            )
        if not agreed:
            raise StoreUnavailable("nodes did not agree on the schema in time", store=_STORE)

    async def drop_keyspace(self, keyspace: str) -> None:
        if not _IDENTIFIER.match(keyspace):
            raise ValueError(f"not a plain CQL identifier: {keyspace!r}")
        await self.execute_schema(f"DROP KEYSPACE IF EXISTS {keyspace}")
