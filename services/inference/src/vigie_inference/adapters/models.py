"""Model states in MongoDB GridFS: learner checkpoints and the champion registry.

A checkpoint is one GridFS file per model kind (the model's ``to_bytes()``) plus a document in
``<bucket>.checkpoints`` written last, naming the files, the label-stream positions the states
have learned up to, and the metrics at that point. A crash between the files and the document
leaves orphan files and no checkpoint: the previous one stays the latest. The registry document
(``<bucket>.registry``) says which kind is champion and whether it is pinned.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bson import ObjectId
from gridfs import AsyncGridFSBucket
from gridfs.errors import GridFSError, NoFile
from pymongo.errors import PyMongoError

from vigie_stores import Outcome, StoreError, StoreUnavailable
from vigie_stores.mongo import MongoStore

from ..handlers.lifecycle import Registry

_REGISTRY_ID = "registry"


@dataclass(frozen=True, slots=True)
class Checkpoint:
    seq: int
    created_at: datetime
    #: ``topic:partition`` → next offset to learn
    positions: dict[str, int]
    learned: int
    files: dict[str, Any]
    metrics: dict[str, Any] = field(default_factory=dict)
    #: fraud labels among ``learned``; None in checkpoints written before it was counted
    learned_frauds: int | None = None

    @property
    def kinds(self) -> list[str]:
        return sorted(self.files)

    def summary(self) -> dict[str, Any]:
        return {
            "checkpoint": self.seq,
            "created_at": self.created_at.isoformat(),
            "learned": self.learned,
            "learned_frauds": self.learned_frauds,
            "positions": self.positions,
            "kinds": self.kinds,
            "metrics": self.metrics,
        }

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Checkpoint:
        frauds = doc.get("learned_frauds")
        return cls(
            seq=int(doc["_id"]),
            created_at=doc["created_at"],
            positions={str(p["stream"]): int(p["offset"]) for p in doc.get("positions", [])},
            learned=int(doc.get("learned", 0)),
            files=dict(doc.get("files", {})),
            metrics=dict(doc.get("metrics", {})),
            learned_frauds=None if frauds is None else int(frauds),
        )


class ModelRegistry:
    def __init__(self, store: MongoStore, bucket: str) -> None:
        self.store = store
        self.bucket_name = bucket
        self.checkpoints = f"{bucket}.checkpoints"
        self.registry = f"{bucket}.registry"
        self._fs = AsyncGridFSBucket(store.database, bucket_name=bucket)

    # -- checkpoints ---------------------------------------------------------------------------

    async def save(
        self,
        seq: int,
        states: Mapping[str, bytes],
        *,
        positions: Mapping[str, int],
        learned: int,
        created_at: datetime,
        metrics: Mapping[str, Any] | None = None,
        learned_frauds: int | None = None,
    ) -> Checkpoint:
        files: dict[str, Any] = {}
        try:
            for kind, data in states.items():
                files[kind] = await self._fs.upload_from_stream(
                    f"{kind}@{seq}", data, metadata={"kind": kind, "checkpoint": seq}
                )
        except (GridFSError, PyMongoError) as exc:
            raise StoreUnavailable(f"GridFS upload failed: {exc}", store="mongo") from exc
        doc = {
            "created_at": created_at,
            # topic names hold dots, refused in keys (and FerretDB refuses nested arrays)
            "positions": [
                {"stream": stream, "offset": offset} for stream, offset in sorted(positions.items())
            ],
            "learned": learned,
            "learned_frauds": learned_frauds,
            "files": files,
            "metrics": dict(metrics or {}),
        }
        await self.store.upsert_versioned(self.checkpoints, seq, doc, 1)
        return Checkpoint.from_doc({"_id": seq, **doc})

    async def latest(self) -> Checkpoint | None:
        found = await self.store.find(self.checkpoints, sort=[("_id", -1)], limit=1)
        return Checkpoint.from_doc(found[0]) if found else None

    async def get(self, seq: int) -> Checkpoint | None:
        doc = await self.store.get(self.checkpoints, seq)
        return Checkpoint.from_doc(doc) if doc else None

    async def versions(self, limit: int = 100) -> list[Checkpoint]:
        found = await self.store.find(self.checkpoints, sort=[("_id", -1)], limit=limit)
        return [Checkpoint.from_doc(doc) for doc in found]

    async def load(self, checkpoint: Checkpoint, kind: str) -> bytes:
        file_id = checkpoint.files.get(kind)
        if file_id is None:
            raise KeyError(f"checkpoint {checkpoint.seq} has no model {kind!r}")
        try:
            stream = await self._fs.open_download_stream(
                file_id if isinstance(file_id, ObjectId) else ObjectId(str(file_id))
            )
            data: bytes = await stream.read()
        except NoFile as exc:
            gone = f"model file of {kind}@{checkpoint.seq} is gone"
            raise StoreError(gone, store="mongo") from exc
        except (GridFSError, PyMongoError) as exc:
            raise StoreUnavailable(f"GridFS download failed: {exc}", store="mongo") from exc
        return data

    async def prune(self, keep: int, protect: set[int]) -> list[int]:
        """Delete all but the ``keep`` newest checkpoints, except those in ``protect``."""
        every = await self.versions(limit=100_000)
        doomed = [cp for cp in every[keep:] if cp.seq not in protect]
        for cp in doomed:
            await self.store.delete_versioned(self.checkpoints, cp.seq, 2)
            for file_id in cp.files.values():
                try:
                    await self._fs.delete(file_id)
                except NoFile:
                    pass
                except (GridFSError, PyMongoError) as exc:
                    raise StoreUnavailable(f"GridFS delete failed: {exc}", store="mongo") from exc
        return [cp.seq for cp in doomed]

    # -- the registry --------------------------------------------------------------------------

    async def read_registry(self, default_champion: str) -> Registry:
        doc = await self.store.get(self.registry, _REGISTRY_ID)
        return Registry.from_doc(doc) if doc else Registry(champion=default_champion)

    async def write_registry(self, registry: Registry) -> bool:
        """False if a concurrent change got there first (same or newer revision stored)."""
        outcome = await self.store.upsert_versioned(
            self.registry, _REGISTRY_ID, registry.doc(), registry.revision
        )
        return outcome is Outcome.APPLIED
