"""MongoDB through PyMongo's async API (``pymongo.AsyncMongoClient``, motor's successor).

Entity mirrors are written with versioned replaces: the filter ``{_id, <version>: {$lt: v}}``
matches only an older stored version, and ``upsert=True`` inserts when nothing is stored. When
the stored version is the same or newer the filter matches nothing, the upsert tries to insert a
second document with that ``_id``, and the server answers "duplicate key": the write is stale and
nothing changed. A delete keeps a tombstone ``{<version>: v, <deleted>: true}``, so an older
upsert arriving after the delete cannot bring the entity back.

Only what FerretDB 1.x also implements is used (replace/update with upsert, unordered bulk
writes, unique and compound indexes, ``$in``/``$lt``/``$ne``); no transactions, change streams or
aggregation stages, so the same code runs on MongoDB, Atlas or FerretDB.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal, Self, TypeVar

from bson import ObjectId
from bson.errors import BSONError
from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pymongo import AsyncMongoClient, IndexModel, InsertOne, ReplaceOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import (
    AutoReconnect,
    BulkWriteError,
    ConnectionFailure,
    DuplicateKeyError,
    ExecutionTimeout,
    InvalidOperation,
    OperationFailure,
    PyMongoError,
    WTimeoutError,
)

from .closing import ClosedOnExit
from .errors import StoreClosed, StoreConflict, StoreError, StoreRejected, StoreUnavailable
from .results import BatchOutcome, Outcome

_STORE = "mongo"
_DUPLICATE_KEY = 11000
# FerretDB 1.x reports a unique-index clash of an update as an InternalError carrying its back
# end's text: SQLite's, or PostgreSQL's SQLSTATE 23505 (unique_violation).
_SQL_UNIQUE = ("UNIQUE constraint failed", "SQLSTATE 23505")
# Server codes that mean "try again later": shutdown, failover, interrupted, time limit, network.
_TRANSIENT_CODES = frozenset(
    {6, 7, 50, 89, 91, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436, 64}
)

Document = dict[str, Any]
DocumentId = str | int | ObjectId
T = TypeVar("T")
_Part = tuple[int, list[T]]  # (items written, items left over: clashes or lost races)


class MongoConfig(BaseModel):
    """Where the server is, which database, and the names of the two bookkeeping fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: SecretStr = SecretStr("mongodb://127.0.0.1:27017")
    database: str = Field(min_length=1)
    app_name: str = "vigie"
    connect_timeout: float = Field(default=5.0, gt=0, description="seconds")
    server_selection_timeout: float = Field(default=10.0, gt=0, description="seconds")
    socket_timeout: float = Field(default=30.0, gt=0, description="seconds per operation")
    # FerretDB 1.x deadlocks (never replies again) when updates in flight reach its PostgreSQL
    # pool: each holds one connection for its query and waits for a second to write. A small
    # client pool keeps every process well below it. On MongoDB, raise all three.
    max_pool_size: int = Field(default=8, ge=1)
    # Also sized for FerretDB: about 100 update statements in flight stall it (one command of 100,
    # or 4 of 50). On MongoDB, 1000 x 4 is a better setting.
    bulk_chunk: int = Field(default=32, ge=1, description="write operations per bulk command")
    bulk_concurrency: int = Field(default=2, ge=1, description="bulk commands in flight")
    version_field: str = Field(default="_version", pattern=r"^[^.$][^.]*$")
    deleted_field: str = Field(default="_deleted", pattern=r"^[^.$][^.]*$")


class IndexSpec(BaseModel):
    """One index: ``keys`` in order with their direction; ``unique`` for a constraint."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    keys: tuple[tuple[str, Literal[1, -1]], ...] = Field(min_length=1)
    unique: bool = False
    name: str | None = None

    def model(self) -> IndexModel:
        options: dict[str, Any] = {"unique": self.unique}
        if self.name is not None:
            options["name"] = self.name
        return IndexModel(list(self.keys), **options)


@dataclass(frozen=True, slots=True)
class VersionedDoc:
    """One item of a versioned batch; ``doc=None`` is a delete (a tombstone is kept)."""

    id: DocumentId
    version: int
    doc: Mapping[str, Any] | None = None


def _is_transient(exc: OperationFailure) -> bool:
    return exc.code in _TRANSIENT_CODES or exc.has_error_label("RetryableWriteError")


@contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except (AutoReconnect, ConnectionFailure, ExecutionTimeout, WTimeoutError) as exc:
        raise StoreUnavailable(str(exc), store=_STORE) from exc
    except DuplicateKeyError as exc:
        raise StoreConflict(str(exc), store=_STORE) from exc
    except BulkWriteError as exc:  # only reached outside the versioned paths, which handle it
        raise StoreError(str(exc.details), store=_STORE) from exc
    except OperationFailure as exc:
        if exc.code == _DUPLICATE_KEY or any(text in str(exc) for text in _SQL_UNIQUE):
            raise StoreConflict(str(exc), store=_STORE) from exc
        if _is_transient(exc):
            raise StoreUnavailable(str(exc), store=_STORE) from exc
        raise StoreRejected(str(exc), store=_STORE) from exc
    except InvalidOperation as exc:  # e.g. the client was closed
        raise StoreClosed(str(exc), store=_STORE) from exc
    except BSONError as exc:
        raise StoreRejected(f"cannot encode document: {exc}", store=_STORE) from exc
    except PyMongoError as exc:
        raise StoreError(str(exc), store=_STORE) from exc


class MongoStore(ClosedOnExit):
    """Versioned document writes, reads and indexes on one database.

    Open with ``await MongoStore.open(config)`` (or ``async with await MongoStore.open(...)``).
    """

    def __init__(self, config: MongoConfig, client: AsyncMongoClient[Document]) -> None:
        self.config = config
        self._client: AsyncMongoClient[Document] | None = client

    @classmethod
    async def open(cls, config: MongoConfig) -> Self:
        """Create the client and ping, so a wrong address fails here, not at the first write."""
        client: AsyncMongoClient[Document] = AsyncMongoClient(
            config.url.get_secret_value(),
            appname=config.app_name,
            connectTimeoutMS=int(config.connect_timeout * 1000),
            serverSelectionTimeoutMS=int(config.server_selection_timeout * 1000),
            socketTimeoutMS=int(config.socket_timeout * 1000),
            maxPoolSize=config.max_pool_size,
            tz_aware=True,
            uuidRepresentation="standard",
        )
        store = cls(config, client)
        try:
            await store.ping()
        except StoreError:
            await client.close()
            raise
        return store

    @property
    def database(self) -> AsyncDatabase[Document]:
        """The driver's database handle, for what this adapter does not wrap."""
        if self._client is None:
            raise StoreClosed("used after close()", store=_STORE)
        return self._client[self.config.database]

    def _collection(self, name: str) -> AsyncCollection[Document]:
        return self.database[name]

    async def ping(self) -> None:
        with _translated():
            await self.database.command("ping")

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()

    # -- versioned writes ---------------------------------------------------------------------

    def _body(self, item: VersionedDoc) -> Document:
        vf, df = self.config.version_field, self.config.deleted_field
        if item.doc is None:
            return {vf: item.version, df: True}
        if vf in item.doc or df in item.doc:
            raise ValueError(f"fields {vf!r} and {df!r} are reserved for versioning")
        if "_id" in item.doc and item.doc["_id"] != item.id:
            raise ValueError(f"document _id {item.doc['_id']!r} differs from id {item.id!r}")
        body = {k: v for k, v in item.doc.items() if k != "_id"}
        body[vf] = item.version
        return body

    def _guard(self, item: VersionedDoc) -> Document:
        return {"_id": item.id, self.config.version_field: {"$lt": item.version}}

    async def upsert_versioned(
        self, collection: str, id: DocumentId, doc: Mapping[str, Any], version: int
    ) -> Outcome:
        """Store ``doc`` as entity ``id`` unless a same-or-newer ``version`` is stored."""
        return await self._write_one(collection, VersionedDoc(id, version, doc))

    async def delete_versioned(self, collection: str, id: DocumentId, version: int) -> Outcome:
        """Replace entity ``id`` with a tombstone unless a same-or-newer version is stored."""
        return await self._write_one(collection, VersionedDoc(id, version, None))

    async def _write_one(self, collection: str, item: VersionedDoc) -> Outcome:
        # One round trip in the common case: a guarded replace that upserts.
        coll = self._collection(collection)
        body = self._body(item)
        for _attempt in range(2):
            try:
                with _translated():
                    await coll.replace_one(self._guard(item), body, upsert=True)
                return Outcome.APPLIED
            except StoreConflict:
                # Stored version same or newer -- or a concurrent first insert of this id (then
                # the retry finds the document), or a clash on another unique index.
                stored = (await self._stored_versions(coll, [item.id])).get(item.id)
                if stored is not None and stored >= item.version:
                    return Outcome.STALE
        raise StoreConflict("duplicate key on a unique index", store=_STORE, keys=(item.id,))

    async def write_many_versioned(
        self, collection: str, items: Sequence[VersionedDoc]
    ) -> BatchOutcome:
        """Apply a batch of versioned upserts and deletes; the newest version of each id wins.

        Three round trips whatever the batch size: read the stored versions of the batch's ids,
        then one unordered bulk of guarded replaces (ids stored with an older version) and one of
        inserts (ids not stored). Ids stored with the same or a newer version are not written at
        all, so a replay costs a read. An insert refused as a duplicate ``_id`` lost a race with
        a concurrent writer and is classified again. A clash on another unique index raises
        ``StoreConflict`` naming those ids, after the rest of the batch was applied.

        Why not one bulk of upserts whose duplicate-key errors mean "stale": FerretDB 1.x stops
        an unordered ``update`` batch at its first error and leaves out ``n``/``nModified``, so the
        rest of the batch would be lost (and PyMongo's bulk result merge fails with a KeyError).
        Guarded replaces without upsert never fail that way; unordered inserts behave the same on
        both servers.
        """
        newest: dict[DocumentId, VersionedDoc] = {}
        stale: list[DocumentId] = []
        for item in items:
            kept = newest.get(item.id)
            if kept is None or item.version > kept.version:
                if kept is not None:
                    stale.append(kept.id)
                newest[item.id] = item
            else:
                stale.append(item.id)

        coll = self._collection(collection)
        pending = list(newest.values())
        conflicts: list[DocumentId] = []
        applied = 0
        for _attempt in range(3):
            if not pending:
                break
            stored = await self._stored_versions(coll, [item.id for item in pending])
            replaces: list[VersionedDoc] = []
            inserts: list[VersionedDoc] = []
            for item in pending:
                version = stored.get(item.id)
                if version is None:
                    inserts.append(item)
                elif version >= item.version:
                    stale.append(item.id)
                else:
                    replaces.append(item)
            replaced, clashed = await self._chunked(self._replace_guarded, coll, replaces)
            inserted, pending = await self._chunked(self._insert_new, coll, inserts)
            applied += replaced + inserted
            conflicts += clashed
        conflicts += [item.id for item in pending]
        if conflicts:
            raise StoreConflict(
                "duplicate key on a unique index", store=_STORE, keys=tuple(conflicts)
            )
        return BatchOutcome(applied=applied, stale=tuple(stale))

    async def insert_many_once(
        self, collection: str, items: Sequence[VersionedDoc]
    ) -> BatchOutcome:
        """Insert documents that are written once per id and never updated (scored events,
        facts): unordered bulks of inserts, no read first. An id already stored is left as it
        is and reported stale: an earlier attempt of the same write got there first (a retry
        after a lost reply, a redelivered message). One round trip per ``bulk_chunk`` items.

        Cheaper than ``write_many_versioned`` where the stored versions cannot be newer (its
        ``$in`` read is a collection scan on FerretDB 1.x). Meant for collections whose only
        unique index is ``_id``: a clash on another unique index is reported stale as well.
        Deletes (``doc=None``) are refused.
        """
        if any(item.doc is None for item in items):
            raise ValueError("insert_many_once inserts documents; deletes are versioned writes")
        first: dict[DocumentId, VersionedDoc] = {}
        for item in items:
            first.setdefault(item.id, item)
        repeated = tuple(item.id for item in items if first[item.id] is not item)
        inserted, refused = await self._chunked(
            self._insert_new, self._collection(collection), list(first.values())
        )
        return BatchOutcome(
            applied=inserted, stale=repeated + tuple(item.id for item in refused)
        )

    async def _chunked(
        self,
        write: Callable[[AsyncCollection[Document], Sequence[VersionedDoc]], Awaitable[_Part[T]]],
        coll: AsyncCollection[Document],
        items: Sequence[VersionedDoc],
    ) -> _Part[T]:
        """Run ``write`` over chunks of ``items``, a few chunks at a time; sum the results."""
        size = self.config.bulk_chunk
        chunks = [items[i : i + size] for i in range(0, len(items), size)]
        if len(chunks) <= 1:
            return await write(coll, items)
        gate = asyncio.Semaphore(self.config.bulk_concurrency)

        async def one(chunk: Sequence[VersionedDoc]) -> _Part[T]:
            async with gate:
                return await write(coll, chunk)

        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(one(chunk)) for chunk in chunks]
        except ExceptionGroup as failures:
            raise failures.exceptions[0] from None
        total, rest = 0, []
        for task in tasks:
            count, part = task.result()
            total += count
            rest += part
        return total, rest

    async def _replace_guarded(
        self, coll: AsyncCollection[Document], items: Sequence[VersionedDoc]
    ) -> tuple[int, list[DocumentId]]:
        """Replace stored older versions; returns (replaced, ids clashing on a unique index).

        A replace whose guard no longer matches (a newer version landed meanwhile) is a no-op.
        """
        if not items:
            return 0, []
        pairs = [(self._guard(item), self._body(item)) for item in items]
        try:
            with _translated():
                try:
                    result = await coll.bulk_write(
                        [ReplaceOne(guard, body) for guard, body in pairs], ordered=False
                    )
                    return result.matched_count, []
                except BulkWriteError as exc:
                    errors: list[Mapping[str, Any]] = exc.details.get("writeErrors", [])
                    others = [e for e in errors if e.get("code") != _DUPLICATE_KEY]
                    if others or exc.details.get("writeConcernErrors"):
                        raise self._bulk_failure(others) from exc
                except KeyError:
                    pass  # FerretDB 1.x: a batch-level reply PyMongo cannot merge
        except StoreConflict:
            pass  # FerretDB 1.x: the whole command failed on a unique index
        # Replay one by one to find the clashing ids: a guarded replace that was already
        # applied no longer matches, so replaying is harmless.
        replaced, clashed = 0, []
        for item, (guard, body) in zip(items, pairs, strict=True):
            try:
                with _translated():
                    done = await coll.replace_one(guard, body)
                replaced += done.matched_count
            except StoreConflict:
                clashed.append(item.id)
        return replaced, clashed

    async def _insert_new(
        self, coll: AsyncCollection[Document], items: Sequence[VersionedDoc]
    ) -> tuple[int, list[VersionedDoc]]:
        """Insert ids not stored yet; returns (inserted, items refused as duplicates)."""
        if not items:
            return 0, []
        requests = [InsertOne({"_id": item.id, **self._body(item)}) for item in items]
        with _translated():
            try:
                result = await coll.bulk_write(requests, ordered=False)
            except BulkWriteError as exc:
                errors: list[Mapping[str, Any]] = exc.details.get("writeErrors", [])
                others = [e for e in errors if e.get("code") != _DUPLICATE_KEY]
                if others or exc.details.get("writeConcernErrors"):
                    raise self._bulk_failure(others) from exc
                refused = [items[e["index"]] for e in errors]
                return len(items) - len(refused), refused
        return result.inserted_count, []

    @staticmethod
    def _bulk_failure(errors: Sequence[Mapping[str, Any]]) -> StoreError:
        first = errors[0] if errors else {"code": None, "errmsg": "write concern error"}
        message = f"bulk write failed: {first.get('errmsg')} (code {first.get('code')})"
        if not errors or first.get("code") in _TRANSIENT_CODES:
            return StoreUnavailable(message, store=_STORE)
        return StoreRejected(message, store=_STORE)

    async def _stored_versions(
        self, coll: AsyncCollection[Document], ids: Sequence[DocumentId]
    ) -> dict[DocumentId, int]:
        vf = self.config.version_field
        with _translated():
            cursor = coll.find(
                {"_id": {"$in": list(ids)}}, {vf: 1}, batch_size=_one_batch(len(ids))
            )
            return {doc["_id"]: doc[vf] async for doc in cursor if vf in doc}

    # -- reads and indexes --------------------------------------------------------------------

    async def get(
        self, collection: str, id: DocumentId, *, include_deleted: bool = False
    ) -> Document | None:
        """The stored document (with its version field), or None if absent or deleted."""
        found = await self.find(collection, {"_id": id}, limit=1, include_deleted=include_deleted)
        return found[0] if found else None

    async def find(
        self,
        collection: str,
        filter: Mapping[str, Any] | None = None,
        *,
        sort: Sequence[tuple[str, Literal[1, -1]]] = (),
        limit: int = 0,
        include_deleted: bool = False,
    ) -> list[Document]:
        """Documents matching ``filter`` (tombstones excluded unless asked), at most ``limit``."""
        query = dict(filter or {})
        if not include_deleted:
            query[self.config.deleted_field] = {"$ne": True}
        with _translated():
            cursor = self._collection(collection).find(
                query, limit=limit, batch_size=_one_batch(limit or _LARGE_BATCH)
            )
            if sort:
                cursor = cursor.sort(list(sort))
            return [doc async for doc in cursor]

    async def ensure_indexes(self, collection: str, specs: Sequence[IndexSpec]) -> list[str]:
        """Create the indexes that are missing; returns the names of all of ``specs``.

        Existing indexes are compared first and only missing ones are created, one command each:
        cheaper on restart, and FerretDB 1.x drops the connection when one ``createIndexes``
        names several indexes that already exist. An index with the same keys or name but other
        options raises ``StoreRejected`` (changing an index is a migration, not an ensure).
        """
        coll = self._collection(collection)
        with _translated():
            existing = [ix async for ix in await coll.list_indexes()]
        by_keys = {tuple(ix["key"].items()): ix for ix in existing}
        by_name = {ix["name"]: ix for ix in existing}
        names: list[str] = []
        for spec in specs:
            model = spec.model()
            name: str = model.document["name"]
            found = by_keys.get(spec.keys) or by_name.get(name)
            if found is None:
                with _translated():
                    names += await coll.create_indexes([model])
                continue
            if tuple(found["key"].items()) != spec.keys or bool(found.get("unique")) != spec.unique:
                raise StoreRejected(
                    f"{collection}: index {found['name']!r} exists with other options "
                    f"({dict(found)}); wanted {spec}",
                    store=_STORE,
                )
            names.append(found["name"])
        return names

    async def drop_database(self) -> None:
        """Drop the configured database (throwaway test databases)."""
        if self._client is None:
            raise StoreClosed("used after close()", store=_STORE)
        with _translated():
            await self._client.drop_database(self.config.database)


_LARGE_BATCH = 10_000


def _one_batch(expected: int) -> int:
    """A first-batch size one larger than the results we expect.

    A server may keep a cursor open when the first batch comes back full, even when nothing
    follows; FerretDB 1.x then holds a PostgreSQL connection for it until the client's connection
    closes, and enough of them exhaust its pool and deadlock it (seen here). One more than we
    expect means the batch is never full, so the cursor is closed with the reply.
    """
    return expected + 1
