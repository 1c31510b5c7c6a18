"""The handbook's own data set, reproduced: the figures and rows the handbook prints."""

from __future__ import annotations

import numpy as np

from vigie_traffic.handbook import handbook_days
from vigie_traffic.simulator import SECONDS_PER_DAY, SimConfig


def test_the_full_data_set_is_the_handbooks() -> None:
    days = list(handbook_days())

    # chapter 3: 1,754,155 transactions over 183 days from 2018-04-01, 14,681 of them frauds
    assert len(days) == 183
    assert sum(len(d) for d in days) == 1_754_155
    assert sum(int(d.fraud.sum()) for d in days) == 14_681
    # transactions_df.head() as the handbook shows it: seconds, customer, terminal, amount
    first = days[0]
    head = [
        (int(first.time_s[i]), int(first.customer[i]), int(first.terminal[i]),
         int(first.amount_cents[i]))
        for i in range(5)
    ]  # fmt: skip
    assert head == [
        (31, 596, 3156, 5716),
        (130, 4961, 3412, 8151),
        (476, 2, 1365, 14600),
        (569, 4128, 8737, 6449),
        (634, 927, 9906, 5099),
    ]
    # every day holds its own transactions, in time order, ids in that order
    for d in days:
        assert np.all(d.time_s // SECONDS_PER_DAY == d.day)
        assert np.all(np.diff(d.time_s) >= 0) and np.all(np.diff(d.tx_id) == 1)
    scenario = np.concatenate([d.scenario for d in days])
    fraud = np.concatenate([d.fraud for d in days])
    assert np.array_equal(scenario > 0, fraud)
    assert days[0].compromised_terminals.size == 2 and days[0].compromised_customers.size == 3
    assert days[-1].compromised_terminals.size == 0  # the handbook draws none on its last day


def test_a_smaller_world_keeps_the_rules() -> None:
    config = SimConfig(n_customers=50, n_terminals=100, nb_days=20)
    days = list(handbook_days(config))
    amount = np.concatenate([d.amount_cents for d in days])
    scenario = np.concatenate([d.scenario for d in days])
    assert np.all(amount[scenario == 0] <= 22_000)  # scenario 1: every amount above 220 is fraud
    assert np.all(amount[scenario == 1] > 22_000)
    again = list(handbook_days(config))
    assert all(
        np.array_equal(a.amount_cents, b.amount_cents) for a, b in zip(days, again, strict=True)
    )
