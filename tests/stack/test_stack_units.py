"""Pure pieces of the stack manager."""

from __future__ import annotations

import base64

from vigie_localstack.components.kafka import cluster_id


def test_kafka_cluster_ids_are_uuids_that_never_look_like_an_option() -> None:
    # one in 64 raw ids starts with "-": 5,000 draws would meet ~78 of them
    ids = {cluster_id() for _ in range(5000)}
    assert len(ids) == 5000
    for value in ids:
        assert not value.startswith("-")
        assert len(value) == 22
        assert len(base64.urlsafe_b64decode(value + "==")) == 16
