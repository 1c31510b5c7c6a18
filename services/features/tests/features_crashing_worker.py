"""``vigie-features worker`` whose customers agent dies of a bug on customer ``CRASH`` (a test
helper: the process must exit 1 instead of faust restarting the agent forever)."""

from __future__ import annotations

from typing import Any

from vigie_features.__main__ import main
from vigie_features.worker import FeaturesWorker

_on_customer = FeaturesWorker._on_customer


async def _buggy(self: FeaturesWorker, stream: Any, event: Any) -> None:
    if event.key == b"CRASH":
        raise RuntimeError("a bug in the customers agent")
    await _on_customer(self, stream, event)


FeaturesWorker._on_customer = _buggy  # type: ignore[method-assign]

if __name__ == "__main__":
    raise SystemExit(main(["worker"]))
