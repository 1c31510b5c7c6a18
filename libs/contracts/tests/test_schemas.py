"""The committed schemas are the contract: golden, mutually compatible, documented."""

from __future__ import annotations

import copy

import pytest

from vigie_contracts import EVENT_MODELS, asyncapi, compat, schemas
from vigie_contracts.topics import CATALOGUE, Compatibility, compatibility_of


@pytest.mark.parametrize("event_type", sorted(EVENT_MODELS))
def test_model_matches_its_committed_schema(event_type: str) -> None:
    # A model change without a new SCHEMA_VERSION (and a new .avsc) fails here.
    assert schemas.current(event_type).schema == schemas.generated(event_type)


def test_every_schema_is_compatible_with_all_its_earlier_versions() -> None:
    assert compat.check_all() == []


def _payload_fields(schema: dict[str, object]) -> list[dict[str, object]]:
    fields = schema["fields"]
    assert isinstance(fields, list)
    payload = next(f for f in fields if f["name"] == "payload")
    result: list[dict[str, object]] = payload["type"]["fields"]
    return result


def test_a_new_required_field_breaks_backward_and_names_the_field() -> None:
    old = schemas.current("transaction_created")
    new = copy.deepcopy(old.schema)
    _payload_fields(new).append({"name": "acquirer_id", "type": "string"})
    problems = compat.check_pair("transaction_created", new, old, Compatibility.BACKWARD)
    assert len(problems) == 1
    assert "acquirer_id" in str(problems[0])
    assert "reader_field_missing_default_value" in str(problems[0])


def test_removing_a_required_field_breaks_forward_but_not_backward() -> None:
    old = schemas.current("fraud_label")
    new = copy.deepcopy(old.schema)
    fields = _payload_fields(new)
    fields[:] = [f for f in fields if f["name"] != "source"]
    assert compat.check_pair("fraud_label", new, old, Compatibility.BACKWARD) == []
    problems = compat.check_pair("fraud_label", new, old, Compatibility.FULL)
    assert [p.direction for p in problems] == ["old reads new"]
    assert "source" in str(problems[0])


def test_an_optional_field_with_default_is_fully_compatible() -> None:
    old = schemas.current("fraud_score")
    new = copy.deepcopy(old.schema)
    _payload_fields(new).append({"name": "region", "type": ["null", "string"], "default": None})
    assert compat.check_pair("fraud_score", new, old, Compatibility.FULL) == []


def test_public_topics_are_full_and_their_events_checked_as_full() -> None:
    for t in CATALOGUE:
        if t.public:
            assert t.compatibility is Compatibility.FULL
            for event_type in t.event_types:
                assert compatibility_of(event_type) is Compatibility.FULL


def test_every_event_type_is_on_a_topic_and_every_topic_name_is_unique() -> None:
    carried = {e for t in CATALOGUE for e in t.event_types}
    assert carried == set(EVENT_MODELS)
    names = [t.name for t in CATALOGUE]
    assert len(names) == len(set(names))


def test_committed_docs_are_up_to_date() -> None:
    for path, content in asyncapi.rendered().items():
        assert path.exists(), f"{path} missing: run `vigie-contracts docs`"
        assert path.read_text() == content, f"{path} is stale: run `vigie-contracts docs`"
