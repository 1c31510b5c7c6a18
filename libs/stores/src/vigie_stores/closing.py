"""``async with`` for every adapter: the store is closed on the way out, whatever happened."""

from __future__ import annotations

from types import TracebackType
from typing import Self


class ClosedOnExit:
    async def close(self) -> object:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
