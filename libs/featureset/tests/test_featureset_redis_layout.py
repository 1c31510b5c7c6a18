"""The Redis layout: keys, fields and TTLs, encoded and decoded, and through the real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr

from vigie_contracts.events.features import EntityType
from vigie_featureset import (
    FIELD_AS_OF,
    FIELD_POSITION,
    FIELD_STATE,
    EntityState,
    LayoutDecodeError,
    StreamPosition,
    TxFact,
    complete,
    decode_fields,
    decode_state,
    default_ttl,
    encode_fields,
    entity_key,
    entity_values,
    entity_view_values,
    parse_entity_key,
    vector_keys,
)
from vigie_localstack.settings import StackSettings
from vigie_stores import Outcome
from vigie_stores.redis import RedisConfig, RedisStore
from vigie_stores.testing import throwaway_redis

T = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def customer_state() -> EntityState:
    state = EntityState(EntityType.CUSTOMER)
    for i in range(5):
        at = T + timedelta(minutes=i)
        state.apply_tx(TxFact(f"t{i}", "c:1", "k1", "T1", "M1", None, 100 * i, at))
    return state


def test_keys_and_positions() -> None:
    assert entity_key(EntityType.CUSTOMER, "c:1") == "feat:customer:c:1"
    assert parse_entity_key("feat:customer:c:1") == (EntityType.CUSTOMER, "c:1")
    with pytest.raises(ValueError, match="not a feature key"):
        parse_entity_key("other:customer:c1")
    pos = StreamPosition("payments.transactions", 3, 1234)
    assert str(pos) == "payments.transactions:3:1234"
    assert StreamPosition.parse(str(pos)) == pos
    with pytest.raises(ValueError, match="stream position"):
        StreamPosition.parse("payments.transactions:x")


def test_ttls_cover_horizon_and_lateness() -> None:
    assert default_ttl(EntityType.CUSTOMER) == timedelta(days=32)
    assert default_ttl(EntityType.TERMINAL) == timedelta(days=39)
    assert default_ttl(EntityType.CARD, lateness=timedelta(hours=2)) == timedelta(days=2, hours=2)


def test_fields_round_trip() -> None:
    state = customer_state()
    views = entity_view_values(EntityType.CUSTOMER, state)
    fields = encode_fields(state, views, position=StreamPosition("payments.transactions", 0, 9))
    assert "_v" not in fields  # RedisStore.write_versioned owns it
    assert set(fields) == {FIELD_STATE, FIELD_AS_OF, FIELD_POSITION, *views}
    stored = decode_fields({**fields, "_v": str(state.version)})
    assert stored.state == state
    assert stored.views == views
    assert stored.as_of == state.last_event_time == T + timedelta(minutes=4)
    assert stored.version == state.version
    assert stored.position == StreamPosition("payments.transactions", 0, 9)
    # bytes keys and values (a client without decode_responses) decode the same.
    as_bytes = {k.encode(): v.encode() for k, v in fields.items()}
    assert decode_fields(as_bytes).state == state
    with pytest.raises(ValueError, match="reserved"):
        encode_fields(state, {"state": {}})
    # Flat values (entity_values) are grouped into their views: the same fields.
    flat = entity_values(EntityType.CUSTOMER, state)
    assert encode_fields(state, flat, position="payments.transactions:0:9") == fields
    with pytest.raises(KeyError):
        encode_fields(state, {"no_such_feature": 1.0})


def test_bad_fields_raise() -> None:
    with pytest.raises(LayoutDecodeError):
        decode_fields({FIELD_STATE: "{not json"})
    with pytest.raises(LayoutDecodeError):
        decode_fields({"customer_windows": "[1, 2]"})
    with pytest.raises(LayoutDecodeError):
        decode_fields({FIELD_POSITION: "nope"})
    assert decode_state(None) is None and decode_state({}) is None


@pytest.fixture
async def redis(stack: StackSettings, unique: str) -> AsyncIterator[RedisStore]:
    config = RedisConfig(
        url=SecretStr(f"redis://{stack.host}:{stack.redis_port}/0"), key_prefix=f"t:{unique}:"
    )
    async with throwaway_redis(config) as store:
        yield store


@pytest.mark.integration
async def test_written_by_features_read_by_inference(redis: RedisStore) -> None:
    state = customer_state()
    key = entity_key(EntityType.CUSTOMER, "c:1")
    fields = encode_fields(state, entity_view_values(EntityType.CUSTOMER, state), position="p:0:5")
    ttl = default_ttl(EntityType.CUSTOMER)
    assert await redis.write_versioned(key, fields, state.version, ttl=ttl) is Outcome.APPLIED

    # An update computed from an older state never overwrites a newer one.
    older = customer_state()
    older.ts.pop()  # simulate fewer events: a lower version
    older.version -= 1
    stale = encode_fields(older, {}, position="p:0:4")
    assert await redis.write_versioned(key, stale, older.version, ttl=ttl) is Outcome.STALE

    raw = await redis.read_hash(key)
    assert raw is not None
    stored = decode_fields(raw)
    assert stored.state == state and stored.version == state.version
    assert stored.position == StreamPosition("p", 0, 5)
    remaining = await redis.ttl(key)
    assert remaining is not None and ttl - timedelta(minutes=1) < remaining <= ttl

    # Inference reads the states it needs in one round trip and completes the vector.
    scored = TxFact("t9", "c:1", "k1", "T1", "M1", None, 900, T + timedelta(minutes=10))
    keys = [entity_key(*k) for k in vector_keys(scored)]
    found = await redis.read_hashes(keys)
    states = {k: decode_state(found.get(entity_key(*k))) for k in vector_keys(scored)}
    vector = complete(scored, states)
    assert vector["customer_nb_tx_1h"] == 6.0
    assert vector["customer_avg_amount_1h"] == (0 + 100 + 200 + 300 + 400 + 900) / 100 / 6
