"""The handbook's simulator on small worlds: reproducibility, distributions, radius, labels."""

from __future__ import annotations

import numpy as np
import pytest

from vigie_traffic.simulator import SECONDS_PER_DAY, Day, SimConfig, Simulator

SMALL = SimConfig(n_customers=300, n_terminals=600, nb_days=40, seed=11)


@pytest.fixture(scope="module")
def sim() -> Simulator:
    return Simulator(SMALL)


@pytest.fixture(scope="module")
def days(sim: Simulator) -> list[Day]:
    return list(sim.days())


def _cat(days: list[Day], name: str) -> np.ndarray:
    return np.concatenate([getattr(d, name) for d in days])


def test_same_seed_same_data_other_seed_other_data(days: list[Day]) -> None:
    again = list(Simulator(SMALL).days())
    for name in ("tx_id", "time_s", "customer", "terminal", "amount_cents", "fraud", "scenario"):
        assert np.array_equal(_cat(days, name), _cat(again, name)), name
    other = list(Simulator(SimConfig(n_customers=300, n_terminals=600, nb_days=40, seed=12)).days())
    assert not np.array_equal(_cat(days, "amount_cents")[:100], _cat(other, "amount_cents")[:100])


def test_profiles_follow_the_handbook(sim: Simulator) -> None:
    c = sim.customers
    assert c.mean_amount.min() >= 5 and c.mean_amount.max() <= 100
    assert np.allclose(c.std_amount, c.mean_amount / 2)
    assert c.mean_nb_tx_per_day.min() >= 0 and c.mean_nb_tx_per_day.max() <= 4
    # U(5, 100) has mean 52.5 and sd 27.4: over 300 customers the sample mean is within ~4.7 (3 se).
    assert abs(c.mean_amount.mean() - 52.5) < 4.8
    assert abs(c.mean_nb_tx_per_day.mean() - 2) < 0.2
    for grid in (c.x, c.y, sim.terminals.x, sim.terminals.y):
        assert grid.min() >= 0 and grid.max() <= 100


def test_ids_sequential_and_times_sorted_within_their_day(days: list[Day]) -> None:
    ids = _cat(days, "tx_id")
    assert np.array_equal(ids, np.arange(ids.size))
    for d in days:
        assert np.all(np.diff(d.time_s) >= 0)
        assert np.all(d.time_s >= d.day * SECONDS_PER_DAY)
        assert np.all(d.time_s < (d.day + 1) * SECONDS_PER_DAY)


def test_time_distribution_is_a_truncated_normal_at_noon(days: list[Day]) -> None:
    in_day = _cat(days, "time_s") % SECONDS_PER_DAY
    assert in_day.size > 10_000
    # N(43200, 20000) cut to [0, 86400): mean 43200, sd ~17,600; se of the mean ~170.
    assert abs(in_day.mean() - 43_200) < 800
    assert 16_500 < in_day.std() < 18_700


def test_volume_matches_poisson_means(sim: Simulator, days: list[Day]) -> None:
    reachable = sim.reach.counts > 0
    expected = sim.customers.mean_nb_tx_per_day[reachable].sum() * SMALL.nb_days
    # ~97% of the N(noon, 20000) times fall inside the day; the rest are dropped.
    ratio = sum(len(d) for d in days) / expected
    assert 0.94 < ratio < 1.0


def test_amounts_follow_each_customers_profile(sim: Simulator, days: list[Day]) -> None:
    amount = _cat(days, "amount_cents")
    customer = _cat(days, "customer")
    plain = _cat(days, "scenario") != 3
    assert amount.min() >= 0
    ratio = amount[plain] / 100 / sim.customers.mean_amount[customer[plain]]
    # N(m, m/2), negatives (2.3%) redrawn from U(0, 2m): mean ratio 1.027, sd ~0.48; se ~0.003.
    assert abs(ratio.mean() - 1.027) < 0.02
    assert 0.44 < ratio.std() < 0.52


def test_radius_rule(sim: Simulator, days: list[Day]) -> None:
    c, t = sim.customers, sim.terminals
    for i in range(SMALL.n_customers):
        dist = np.hypot(t.x - c.x[i], t.y - c.y[i])
        assert np.array_equal(sim.reach.of(i), np.flatnonzero(dist < SMALL.radius))
    customer, terminal = _cat(days, "customer"), _cat(days, "terminal")
    dist = np.hypot(t.x[terminal] - c.x[customer], t.y[terminal] - c.y[customer])
    assert dist.max() < SMALL.radius
    # Customers who reach no terminal never pay.
    assert np.all(sim.reach.counts[np.unique(customer)] > 0)


def test_scenario_1_every_amount_above_220_is_fraud(days: list[Day]) -> None:
    amount, fraud, scenario = (
        _cat(days, "amount_cents"),
        _cat(days, "fraud"),
        _cat(days, "scenario"),
    )
    assert np.any(amount > 22_000)
    assert np.all(fraud[amount > 22_000])
    assert np.all(amount[scenario == 1] > 22_000)
    assert np.all(fraud == (scenario > 0))


def test_scenario_2_compromised_terminals_are_fraud_for_28_days(days: list[Day]) -> None:
    windows: dict[int, list[int]] = {}
    for d in days:
        assert d.compromised_terminals.size == 2
        for t in d.compromised_terminals:
            windows.setdefault(int(t), []).append(d.day)
    hits = 0
    for d in days:
        for j in range(len(d)):
            t = int(d.terminal[j])
            inside = any(s <= d.day < s + 28 for s in windows.get(t, []))
            if inside:
                hits += 1
                assert d.fraud[j]
            if d.scenario[j] == 2:
                assert inside
    assert hits > 0


def test_scenario_3_multiplies_a_third_of_victims_amounts(sim: Simulator, days: list[Day]) -> None:
    opened: dict[int, list[int]] = {}
    for d in days:
        assert d.compromised_customers.size == 3
        for c in d.compromised_customers:
            opened.setdefault(int(c), []).append(d.day)
    in_window = multiplied = 0
    for d, (customer, original) in zip(days, sim.genuine_days(), strict=True):
        assert np.array_equal(d.customer, customer)
        three = d.scenario == 3
        assert np.array_equal(d.amount_cents[three], original[three] * 5)
        assert np.array_equal(d.amount_cents[~three], original[~three])
        for j in range(len(d)):
            inside = any(s <= d.day < s + 14 for s in opened.get(int(d.customer[j]), []))
            in_window += inside
            if three[j]:
                multiplied += 1
                assert inside and d.fraud[j]
    assert multiplied > 0
    # A third of each window's transactions; a row in two overlapping windows counts in both draws.
    assert 0.2 < multiplied / in_window < 0.45


def test_config_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        SimConfig(n_customers=0)
