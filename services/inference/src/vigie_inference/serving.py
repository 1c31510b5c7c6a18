"""Which models serve, loaded from the registry: the champion and the shadow challengers.

``ModelSource.refresh`` reads the registry document and the newest checkpoint (two small reads)
and loads model states only when the version to serve changed; the scorer calls it every
``model_poll_s``. With no checkpoint (or one that learned fewer than ``min_labels_to_serve``
labels, or fewer than ``min_frauds_to_serve`` fraud labels) the champion is the cold-start rule
and the status says so.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass

from .adapters.models import Checkpoint, ModelRegistry
from .handlers.lifecycle import Registry, version_of
from .handlers.scoring import Served, ServingSet
from .model import (
    DEFAULT_CHALLENGERS,
    DEFAULT_CHAMPION,
    ColdStartModel,
    FraudModel,
    build_model,
    from_bytes,
)

COLD_START = "cold_start"


@dataclass(frozen=True, slots=True)
class Kinds:
    champion: str
    challengers: tuple[str, ...]
    seed: int = 0

    @property
    def all(self) -> tuple[str, ...]:
        return (self.champion, *(k for k in self.challengers if k != self.champion))

    @classmethod
    def of(cls, champion: str, challengers: tuple[str, ...] | None, seed: int) -> Kinds:
        return cls(
            champion or DEFAULT_CHAMPION,
            tuple(DEFAULT_CHALLENGERS if challengers is None else challengers),
            seed,
        )


def fresh(kind: str, seed: int) -> FraudModel:
    model: FraudModel = build_model(kind, seed=seed)
    return model


def restore(kind: str, data: bytes) -> FraudModel:
    """The model ``data`` (``to_bytes()`` of one) holds; it must be of ``kind``."""
    model: FraudModel = from_bytes(data)
    if model.name != kind:
        raise ValueError(f"checkpointed state of {model.name!r} where {kind!r} was expected")
    return model


def _freeze_heap() -> None:
    """Keep the served models out of the cyclic GC's full passes. A forest is a long-lived graph
    of ~10^6 objects that every full pass walks, holding the event loop: measured in the scorer at
    200 tx/s, a 215-258 ms pause every ~9 s; 33-80 ms with the models frozen (an ARF of 712k
    objects alone: 586 ms, 0.0 ms once frozen). The models a reload replaces were frozen with the
    rest: thawed and collected first, one full pass per reload."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def cold_start() -> ServingSet:
    return ServingSet(Served(COLD_START, COLD_START, ColdStartModel(), cold_start=True))


class ModelSource:
    def __init__(
        self,
        registry: ModelRegistry,
        kinds: Kinds,
        *,
        min_labels: int = 1,
        min_frauds: int = 0,
    ) -> None:
        self.registry = registry
        self.kinds = kinds
        self.min_labels = min_labels
        self.min_frauds = min_frauds
        self.serving: ServingSet = cold_start()
        self.checkpoint: Checkpoint | None = None
        self.state: Registry = Registry(champion=kinds.champion)
        self._loaded: dict[str, tuple[str, FraudModel]] = {}
        self.reloads = 0

    async def refresh(self) -> bool:
        """Reload if the registry or the newest checkpoint moved; True if the set changed."""
        state = await self.registry.read_registry(self.kinds.champion)
        latest = await self.registry.latest()
        self.state, self.checkpoint = state, latest
        if latest is None or not self.enough(latest):
            changed = not self.serving.cold_start
            self.serving = cold_start()
            return changed
        revision = f"{state.revision}:{state.pinned}:{latest.seq}:{state.champion}"
        if revision == self.serving.revision:
            return False
        pinned = await self.registry.get(state.pinned) if state.pinned is not None else None
        champion_cp = pinned or latest
        champion_kind = state.champion
        if champion_kind not in champion_cp.files:
            champion_kind = self.kinds.champion
        if champion_kind not in champion_cp.files:
            # a checkpoint of other kinds (the configuration changed): serve the safe rule
            changed = not self.serving.cold_start
            self.serving = cold_start()
            return changed
        champion = await self._served(champion_kind, champion_cp)
        challengers = []
        for kind in self.kinds.all:
            if kind != champion_kind and kind in latest.files:
                challengers.append(await self._served(kind, latest))
        self.serving = ServingSet(champion, tuple(challengers), revision)
        self.reloads += 1
        _freeze_heap()
        return True

    def enough(self, checkpoint: Checkpoint) -> bool:
        """Whether ``checkpoint`` learned enough to replace the cold-start rule."""
        frauds = checkpoint.learned_frauds
        return checkpoint.learned >= self.min_labels and (
            frauds is None or frauds >= self.min_frauds
        )

    async def _served(self, kind: str, checkpoint: Checkpoint) -> Served:
        version = version_of(kind, checkpoint.seq)
        cached = self._loaded.get(kind)
        if cached is not None and cached[0] == version:
            return Served(kind, version, cached[1])
        data = await self.registry.load(checkpoint, kind)
        model = restore(kind, data)
        self._loaded[kind] = (version, model)
        return Served(kind, version, model)
