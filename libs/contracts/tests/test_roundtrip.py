"""Every event model survives its serializer: what a producer writes, a consumer reads back."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vigie_contracts import EVENT_MODELS, Envelope, Event, decode, encode
from vigie_contracts.testing import envelopes


@pytest.mark.parametrize("event_type", sorted(EVENT_MODELS))
def test_every_model_round_trips(event_type: str) -> None:
    @settings(max_examples=40, suppress_health_check=[HealthCheck.too_slow], deadline=None)
    @given(envelopes(EVENT_MODELS[event_type]))
    def check(envelope: Envelope[Event]) -> None:
        decoded = decode(encode(envelope))
        assert decoded == envelope
        assert type(decoded.payload) is EVENT_MODELS[event_type]

    check()


@given(st.binary(max_size=64))
def test_random_bytes_never_decode_silently(data: bytes) -> None:
    from vigie_contracts import ContractError

    try:
        decode(data)
    except ContractError:
        return
    raise AssertionError(f"{data!r} decoded")  # pragma: no cover - would be a contract hole
