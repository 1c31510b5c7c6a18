"""The worker's tables: faust's partition check, without its false alarm on a changelog the
group's metadata does not list yet (pure: an app that is never started)."""

from __future__ import annotations

from types import SimpleNamespace

import faust
import pytest
from faust.exceptions import PartitionsMismatch

from vigie_features.worker import _Table


def test_a_changelog_not_listed_yet_is_not_a_partition_mismatch() -> None:
    app = faust.App("vigie-tables-test", broker="kafka://127.0.0.1:1", Table=_Table)
    table = app.Table("customers", partitions=4, key_type=bytes, value_type=bytes)
    assert isinstance(table, _Table)
    counts = {"payments.transactions": 4, table.changelog_topic_name: 0}
    # the consumer's metadata, as the check reads it (a real consumer would start a thread)
    app.consumer = SimpleNamespace(topic_partitions=counts.get)  # type: ignore[assignment]
    table._verify_source_topic_partitions("payments.transactions")  # faust raised here
    counts[table.changelog_topic_name] = 3  # a real mismatch, once the count is known
    with pytest.raises(PartitionsMismatch):
        table._verify_source_topic_partitions("payments.transactions")


def test_a_verified_source_topic_costs_no_metadata_lookup() -> None:
    """The check runs on every table write: once verified, only faust's set is read."""
    app = faust.App("vigie-tables-test-2", broker="kafka://127.0.0.1:1", Table=_Table)
    table = app.Table("cards", partitions=4, key_type=bytes, value_type=bytes)
    assert isinstance(table, _Table)
    counts = {"payments.transactions": 4, table.changelog_topic_name: 4}
    app.consumer = SimpleNamespace(topic_partitions=counts.get)  # type: ignore[assignment]
    table._verify_source_topic_partitions("payments.transactions")

    def no_lookup(topic: str) -> int:
        raise AssertionError(f"metadata read for {topic} on a verified source topic")

    app.consumer = SimpleNamespace(topic_partitions=no_lookup)  # type: ignore[assignment]
    table._verify_source_topic_partitions("payments.transactions")
