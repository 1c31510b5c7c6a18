"""The REST API process (``serve_api``: uvicorn, the runtime's health routes) over HTTP against
the real Redis, with hashes written by the worker's own writer (``FeatureSink``)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import features_testkit as kit
import httpx
import pytest

from vigie_contracts.events.features import EntityType
from vigie_features.adapters.sink import FeatureSink
from vigie_features.app import serve_api
from vigie_features.handlers import Touched, hash_fields
from vigie_featureset import FEATURES, VIEW_REQUEST, EntityState, TxFact, entity_key
from vigie_localstack.settings import StackSettings
from vigie_runtime.testing import eventually
from vigie_stores.redis import RedisStore
from vigie_stores.testing import throwaway_redis

pytestmark = pytest.mark.integration

MAX_ENTITIES = 5


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _tx(n: int, at: datetime, terminal: str = "T1") -> TxFact:
    return TxFact(f"tx{n}", "C1", "K1", terminal, "M1", None, 1000 * n, at)


async def _store_states(store: RedisStore, now: datetime) -> None:
    """C1: two transactions, the last 10 s ago (customer views: freshness 1 s, clickstream
    30 s); T-new: its last transaction 10 min ago, T-old 2 h ago (terminal: freshness 1 h)."""
    sink = FeatureSink(store, {kind: timedelta(minutes=5) for kind in EntityType})
    customer = EntityState(EntityType.CUSTOMER)
    customer.apply_tx(_tx(1, now - timedelta(hours=3)))
    customer.apply_tx(_tx(2, now - timedelta(seconds=10)))
    fresh = EntityState(EntityType.TERMINAL)
    fresh.apply_tx(_tx(3, now - timedelta(minutes=10), "T-new"))
    old = EntityState(EntityType.TERMINAL)
    old.apply_tx(_tx(4, now - timedelta(days=9), "T-old"))
    old.apply_label("tx4", True, now - timedelta(hours=2))
    for kind, entity_id, state in (
        (EntityType.CUSTOMER, "C1", customer),
        (EntityType.TERMINAL, "T-new", fresh),
        (EntityType.TERMINAL, "T-old", old),
    ):
        touched = Touched(kind, entity_id, state, changed=True)
        sink.put(kind, entity_id, hash_fields(touched, f"t:0:{state.version}"), state.version)
    await sink.flush()
    # a hash the API cannot decode: reported, every value missing
    await store.write_hashes({entity_key(EntityType.CUSTOMER, "broken"): {"_as_of": "soon"}})


@pytest.fixture
async def api(stack: StackSettings, unique: str, tmp_path: Path) -> AsyncIterator[Any]:
    port = _free_port()
    s = kit.settings(stack, unique, tmp_path, http_port=port, api_max_entities=MAX_ENTITIES)
    async with throwaway_redis(s.redis) as store:
        await _store_states(store, datetime.now(UTC))
        stop = asyncio.Event()
        task = asyncio.create_task(serve_api(s, stop=stop))
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:

            async def ready() -> bool:
                try:
                    return (await client.get("/health/ready")).status_code == 200
                except httpx.TransportError:
                    return False

            try:
                await eventually(ready, timeout_s=20)
                yield client
            finally:
                stop.set()
                await asyncio.wait_for(task, 20)


async def test_one_entity_values_ages_and_statuses(api: httpx.AsyncClient) -> None:
    r = await api.get("/v1/features/customer/C1")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["entity_type"] == "customer" and body["entity_id"] == "C1" and body["found"]
    assert body["version"] == 2 and body["position"] == "t:0:2"
    features = body["features"]
    stored = [
        f.name for f in FEATURES if f.entity is EntityType.CUSTOMER and f.view != VIEW_REQUEST
    ]
    assert list(features) == stored
    assert features["customer_nb_tx_1d"]["value"] == 2.0
    nb = features["customer_nb_tx_1h"]
    assert nb["value"] == 1.0 and nb["status"] == "stale"  # 10 s old, freshness 1 s
    assert 9 < nb["age_s"] < 30
    assert features["customer_nb_tx_7d"]["value"] == 2.0
    assert features["customer_avg_amount_7d"]["value"] == 15.0  # (10 + 20) / 2, in units
    sessions = features["customer_sessions_1h"]
    assert sessions["status"] == "present" and sessions["value"] == 0.0  # freshness 30 s
    r = await api.get(
        "/v1/features/customer/C1",
        params=[("feature", "customer_nb_tx_7d"), ("feature", "customer_sessions_1h")],
    )
    assert list(r.json()["features"]) == ["customer_nb_tx_7d", "customer_sessions_1h"]
    terminal = (await api.get("/v1/features/terminal/T-new")).json()["features"]
    assert {f["status"] for f in terminal.values()} == {"present"}
    assert terminal["terminal_nb_tx_1d"]["value"] == 0.0  # windows end 7 days before as_of


async def test_many_entities_in_one_call(api: httpx.AsyncClient) -> None:
    r = await api.post(
        "/v1/features/lookup",
        json={
            "entities": [
                {"entity_type": "customer", "entity_id": "C1", "features": ["customer_nb_tx_7d"]},
                {"entity_type": "terminal", "entity_id": "T-new"},
                {"entity_type": "terminal", "entity_id": "T-old"},
                {"entity_type": "merchant", "entity_id": "nobody"},
                {"entity_type": "customer", "entity_id": "broken"},
            ]
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["count"] == 5
    c1, new, old, nobody, broken = body["results"]
    assert c1["features"] == {
        "customer_nb_tx_7d": {"value": 2.0, "age_s": c1["features"]["customer_nb_tx_7d"]["age_s"],
                              "status": "stale"}
    }
    assert {f["status"] for f in new["features"].values()} == {"present"}
    old_features = old["features"]
    assert {f["status"] for f in old_features.values()} == {"stale"}  # 2 h old, freshness 1 h
    assert 7000 < old_features["terminal_nb_tx_30d"]["age_s"] < 7300
    # the fraud label: known 2 h ago, 7 days after its transaction of 9 days ago
    assert old_features["terminal_nb_tx_30d"]["value"] == 1.0
    assert old_features["terminal_risk_30d"]["value"] == 1.0
    assert nobody["found"] is False and nobody["as_of"] is None
    assert {f["status"] for f in nobody["features"].values()} == {"missing"}
    assert all(f["value"] is None and f["age_s"] is None for f in nobody["features"].values())
    assert broken["found"] is True and "error" in broken
    assert {f["status"] for f in broken["features"].values()} == {"missing"}


async def test_registry(api: httpx.AsyncClient) -> None:
    body = (await api.get("/v1/features/registry")).json()
    assert body["count"] == len(FEATURES) == len(body["features"])
    by_name = {f["name"]: f for f in body["features"]}
    risk = by_name["terminal_risk_7d"]
    assert risk["entity"] == "terminal" and risk["window_s"] == 7 * 86_400
    assert risk["delay_s"] == 7 * 86_400 and risk["freshness_s"] == 3600 and risk["stored"]
    assert risk["type"] and risk["description"]
    assert by_name["amount"]["stored"] is False
    terminal = (await api.get("/v1/features/registry", params={"entity": "terminal"})).json()
    assert terminal["count"] == 6 and {f["entity"] for f in terminal["features"]} == {"terminal"}


@pytest.mark.parametrize(
    ("method", "path", "payload", "status", "says"),
    [
        ("GET", "/v1/features/customer/nobody", None, 404, "no features stored"),
        ("GET", "/v1/features/planet/C1", None, 422, "unknown entity type"),
        ("GET", "/v1/features/device/D1", None, 422, "no stored features"),
        ("GET", "/v1/features/card/K1?feature=customer_nb_tx_1d", None, 422, "not stored"),
        ("GET", "/v1/features/registry?entity=planet", None, 422, "unknown entity type"),
        ("POST", "/v1/features/lookup", {"entities": []}, 422, "at least 1"),
        ("POST", "/v1/features/lookup", {"entity": []}, 422, "entities"),
        ("POST", "/v1/features/lookup", "not json", 422, "JSON"),
        (
            "POST", "/v1/features/lookup",
            {"entities": [{"entity_type": "customer", "entity_id": ""}]}, 422, "at least 1",
        ),
        (
            "POST", "/v1/features/lookup",
            {"entities": [{"entity_type": "customer", "entity_id": "C1"},
                          {"entity_type": "planet", "entity_id": "P1"}]},
            422, "entities[1]: unknown entity type",
        ),
        (
            "POST", "/v1/features/lookup",
            {"entities": [{"entity_type": "customer", "entity_id": f"C{i}"}
                          for i in range(MAX_ENTITIES + 1)]},
            422, f"at most {MAX_ENTITIES} per call",
        ),
    ],
)
async def test_bad_input_is_a_clear_4xx(
    api: httpx.AsyncClient, method: str, path: str, payload: Any, status: int, says: str
) -> None:
    if isinstance(payload, str):
        r = await api.request(
            method, path, content=payload, headers={"content-type": "application/json"}
        )
    else:
        r = await api.request(method, path, json=payload)
    assert r.status_code == status, r.text
    assert says in r.text

