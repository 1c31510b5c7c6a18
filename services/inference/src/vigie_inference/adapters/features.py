"""Entity states from the online store (Redis), every key of a batch in one round trip.

Parsed states are cached by key and version (``_v``): an entity read again unchanged costs a
dictionary lookup instead of a parse. The cached state is never mutated (``complete`` merges
pending transactions into a copy).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

from vigie_contracts.events.features import EntityType
from vigie_featureset import (
    FIELD_STATE,
    FIELD_VERSION,
    EntityState,
    LayoutDecodeError,
    StateDecodeError,
    TxFact,
    entity_key,
    vector_keys,
)
from vigie_stores.redis import RedisStore

from ..handlers.errors import BadFeatures

States = dict[tuple[EntityType, str], EntityState | None]


class FeatureReader:
    def __init__(self, store: RedisStore, *, cache_size: int = 50_000) -> None:
        self.store = store
        self._cache: OrderedDict[str, tuple[str, EntityState]] = OrderedDict()
        self._cache_size = cache_size

    async def states(self, txs: Iterable[TxFact]) -> list[States]:
        """For each transaction, the states ``complete`` needs (None where Redis has none)."""
        wanted = [vector_keys(tx) for tx in txs]
        keys = sorted({entity_key(et, eid) for pairs in wanted for et, eid in pairs})
        found = await self.store.read_hashes(keys) if keys else {}
        parsed: dict[str, EntityState | None] = {k: self._parse(k, found.get(k)) for k in keys}
        return [{pair: parsed[entity_key(*pair)] for pair in pairs} for pairs in wanted]

    def _parse(self, key: str, fields: dict[str, str] | None) -> EntityState | None:
        if not fields or FIELD_STATE not in fields:
            return None
        version = fields.get(FIELD_VERSION, "")
        cached = self._cache.get(key)
        if cached is not None and version and cached[0] == version:
            self._cache.move_to_end(key)
            return cached[1]
        try:
            state = EntityState.from_bytes(fields[FIELD_STATE])
        except (StateDecodeError, LayoutDecodeError, ValueError) as exc:
            raise BadFeatures(f"{key}: {exc}") from exc
        if version:
            self._cache[key] = (version, state)
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return state
