"""The servers of the stack, in start order, and their dependency closure."""

from __future__ import annotations

import importlib
from collections.abc import Iterable

from .component import Component, StackError

#: Start order; a component starts once everything it ``requires`` is healthy.
NAMES: tuple[str, ...] = ("postgres", "redis", "kafka", "connect", "cassandra", "ferretdb")


def load(name: str) -> Component:
    if name not in NAMES:
        raise StackError(f"unknown component {name!r}; known: {', '.join(NAMES)}")
    module = importlib.import_module(f"vigie_localstack.components.{name}")
    component: Component = module.COMPONENT
    return component


def closure(names: Iterable[str]) -> list[Component]:
    """The named components and everything they require, in start order."""
    wanted: set[str] = set()
    pending = list(names) or list(NAMES)
    while pending:
        name = pending.pop()
        if name in wanted:
            continue
        wanted.add(name)
        pending.extend(load(name).requires)
    return [load(name) for name in NAMES if name in wanted]
