"""The servers of the stack and vigie's own processes, in start order, and dependency closures."""

from __future__ import annotations

import importlib
from collections.abc import Iterable

from .apps import APP_NAMES, app
from .component import Component, StackError

#: Start order of the servers; a component starts once everything it ``requires`` is healthy.
NAMES: tuple[str, ...] = ("postgres", "redis", "kafka", "connect", "cassandra", "ferretdb")
#: Servers, then the services and the traffic generator (``vigie-stack up --apps``).
EVERYTHING: tuple[str, ...] = (*NAMES, *APP_NAMES)


def load(name: str) -> Component:
    if name in APP_NAMES:
        return app(name)
    if name not in NAMES:
        raise StackError(f"unknown component {name!r}; known: {', '.join(EVERYTHING)}")
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
    return [load(name) for name in EVERYTHING if name in wanted]
