"""The raw zone: every (redacted) change event as Parquet, completed before offsets commit.

The runtime's loop commits a batch's offsets as soon as the handler returns, so the records of a
batch must be in final files by then: the zone flushes at the end of every batch. That makes one
file per partition and hour per batch (compact them downstream, or raise the batch size); a
loop that committed only ``LakeWriter.committable_offsets()`` would allow longer-lived files.
"""

from __future__ import annotations

from collections.abc import Sequence

from vigie_stores import StoreUnavailable
from vigie_stores.lake import LakeConfig, LakeWriter, RawRecord


class RawZone:
    def __init__(self, config: LakeConfig) -> None:
        self._config = config
        self._writer = LakeWriter(config)
        self.files_written = 0

    @property
    def writer(self) -> LakeWriter:
        return self._writer

    async def write(self, records: Sequence[RawRecord]) -> list[str]:
        if not records:
            return []
        ordered = sorted(records, key=lambda r: (r.topic, r.partition, r.offset))
        try:
            await self._writer.write(ordered)
            done = await self._writer.flush()
        except StoreUnavailable:
            # an open file may be damaged: drop this writer; the batch is retried whole
            await self._writer.abandon()
            self._writer = LakeWriter(self._config)
            raise
        self.files_written += len(done)
        return done

    async def close(self) -> None:
        await self._writer.close()
