"""The OLTP world and the time-ordered writes derived from the simulator, without a database."""

from __future__ import annotations

from datetime import timedelta

import pytest

from vigie_traffic.plan import (
    BINS,
    DisputeWrite,
    RefundWrite,
    TxWrite,
    actions,
    luhn_check_digit,
    luhn_valid,
    simulator_timeline,
    simulator_world,
)
from vigie_traffic.simulator import SECONDS_PER_DAY, SimConfig, Simulator

CONFIG = SimConfig(n_customers=200, n_terminals=400, nb_days=30, seed=5)


@pytest.fixture(scope="module")
def sim() -> Simulator:
    return Simulator(CONFIG)


def test_luhn() -> None:
    assert luhn_valid("4111111111111111")
    assert luhn_valid("5555555555554444")
    assert not luhn_valid("4111111111111112")
    assert luhn_check_digit("7992739871") == "3"


def test_world_is_derived_from_the_seed(sim: Simulator) -> None:
    a, b = simulator_world(sim, "run-a"), simulator_world(Simulator(CONFIG), "run-b")
    assert [c.full_name for c in a.customers] == [c.full_name for c in b.customers]
    assert [c.pan for c in a.cards] == [c.pan for c in b.cards]
    assert a.customers[3].external_ref == "run-a-c3"
    assert len({c.external_ref for c in a.customers}) == CONFIG.n_customers
    other = simulator_world(Simulator(SimConfig(n_customers=200, n_terminals=400, seed=6)), "x")
    assert [c.pan for c in a.cards] != [c.pan for c in other.cards]


def test_world_rows_are_realistic(sim: Simulator) -> None:
    world = simulator_world(sim, "r")
    assert len(world.cards) == CONFIG.n_customers
    for card in world.cards:
        assert len(card.pan) == 16 and luhn_valid(card.pan)
        assert card.pan.startswith(BINS[card.brand])
    for customer in world.customers:
        assert customer.email.endswith("@example.com") and customer.email.isascii()
        assert customer.phone.startswith("+33 6 ")
    assert all(0 <= t.merchant < len(world.merchants) for t in world.terminals)
    assert [t.location_x for t in world.terminals] == sim.terminals.x.tolist()
    assert len({m.mcc for m in world.merchants}) > 3


def test_actions_are_time_ordered_and_cover_every_transaction(sim: Simulator) -> None:
    world = simulator_world(sim, "r")
    days = list(sim.days())
    plan = list(actions(world, days, simulator_timeline(sim)))
    times = [a.at for a in plan]
    assert times == sorted(times)
    txs = [a for a in plan if isinstance(a, TxWrite)]
    assert [t.tx for t in txs] == [int(i) for d in days for i in d.tx_id]
    amounts = [int(a) for d in days for a in d.amount_cents]
    assert [t.amount_cents for t in txs] == amounts
    # Re-planning gives the same writes: statuses and channels are seeded too.
    assert plan == list(actions(world, sim.days(), simulator_timeline(sim)))


def test_frauds_become_disputes_after_the_label_delay(sim: Simulator) -> None:
    world = simulator_world(sim, "r")
    plan = list(actions(world, sim.days(), simulator_timeline(sim)))
    end = CONFIG.start + timedelta(seconds=CONFIG.nb_days * SECONDS_PER_DAY)
    by_tx = {a.tx: a for a in plan if isinstance(a, TxWrite)}
    disputes = {a.tx: a for a in plan if isinstance(a, DisputeWrite)}
    refunds = {a.tx: a for a in plan if isinstance(a, RefundWrite)}
    expected = {
        t.tx
        for t in by_tx.values()
        if t.fraud and not t.declined and t.amount_cents > 0 and t.at + timedelta(days=7) < end
    }
    assert expected and set(disputes) == expected
    for d in disputes.values():
        tx = by_tx[d.tx]
        assert d.at == tx.at + timedelta(days=7)
        assert d.amount_cents == tx.amount_cents
        assert (
            d.reason_code == {"visa": "10.4", "mastercard": "4837"}[world.cards[tx.customer].brand]
        )
    assert refunds
    for r in refunds.values():
        tx = by_tx[r.tx]
        assert not tx.fraud and not tx.declined
        assert timedelta(days=1) <= r.at - tx.at <= timedelta(days=10)
    followed = {t.tx for t in by_tx.values() if t.follow_up}
    assert followed == set(disputes) | set(refunds)
    declined = sum(t.declined for t in by_tx.values()) / len(by_tx)
    assert 0.01 < declined < 0.035
    assert all(t.decline_reason for t in by_tx.values() if t.declined)
