"""Fixtures for every test in the repository: where the local stack's servers listen."""

from __future__ import annotations

import uuid

import pytest

from vigie_localstack.settings import StackSettings


@pytest.fixture(scope="session")
def stack() -> StackSettings:
    """Ports and credentials of the running local stack (``./vigie test`` starts it first)."""
    return StackSettings()


@pytest.fixture
def unique() -> str:
    """A short name no other test (or earlier run) uses: isolates topics, keyspaces, databases."""
    return uuid.uuid4().hex[:10]
