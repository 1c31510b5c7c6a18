"""The handbook's own data set, transaction for transaction.

:mod:`vigie_traffic.simulator` follows the handbook's rules with its own random streams (a day at
a time, vectorised): a different draw of the same world. The quality bar of issue 9 comes from
the handbook's results on *its* draw, so this module replays the handbook's generator call for
call — the legacy global NumPy generator seeded per customer (``np.random.seed(customer_id)``),
Python's ``random`` for the terminal choice and scenario 3, pandas' ``sample(random_state=day)``
for the compromised terminals and customers — and yields the result as :class:`Day` values.

Le Borgne et al., *Reproducible Machine Learning for Credit Card Fraud Detection*, chapter 3
("Transaction data simulator"): ``generate_dataset(n_customers=5000, n_terminals=10000,
nb_days=183, start_date="2018-04-01", r=5)`` then ``add_frauds``; the handbook reports 1,754,155
transactions, 14,681 of them fraudulent. Only the sort of the whole table by time is not
reproduced exactly (the handbook's pandas quicksort orders transactions of the same second in an
unspecified way); it only decides the transaction ids of simultaneous transactions.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import numpy as np

from vigie_traffic.simulator import (
    SECONDS_PER_DAY,
    CustomerProfiles,
    Day,
    FloatArray,
    IntArray,
    SimConfig,
    TerminalProfiles,
    terminals_within_radius,
)


def customer_profiles(n: int, seed: int = 0) -> CustomerProfiles:
    """``generate_customer_profiles_table``: per customer x, y, mean amount, mean count per day
    (four uniforms in that order from ``np.random.seed(seed)``; std is half the mean)."""
    u = np.random.RandomState(seed).random_sample(4 * n).reshape(n, 4)
    mean_amount = 5 + 95 * u[:, 2]
    return CustomerProfiles(
        x=100 * u[:, 0],
        y=100 * u[:, 1],
        mean_amount=mean_amount,
        std_amount=mean_amount / 2,
        mean_nb_tx_per_day=4 * u[:, 3],
    )


def terminal_profiles(n: int, seed: int = 1) -> TerminalProfiles:
    u = np.random.RandomState(seed).random_sample(2 * n).reshape(n, 2)
    return TerminalProfiles(x=100 * u[:, 0], y=100 * u[:, 1])


def _customer_transactions(
    customer: int,
    mean_amount: float,
    std_amount: float,
    mean_nb: float,
    terminals: list[int],
    nb_days: int,
) -> tuple[list[int], list[int], list[float]]:
    """``generate_transactions_table`` of one customer: (seconds, terminal, amount) lists."""
    py = random.Random(customer)  # noqa: S311 - the handbook's own generator, not for secrets
    rs = np.random.RandomState(customer)
    times: list[int] = []
    chosen: list[int] = []
    amounts: list[float] = []
    for day in range(nb_days):
        for _ in range(int(rs.poisson(mean_nb))):
            time_tx = int(rs.normal(SECONDS_PER_DAY / 2, 20_000))
            if 0 < time_tx < SECONDS_PER_DAY:
                amount = float(rs.normal(mean_amount, std_amount))
                if amount < 0:
                    amount = float(rs.uniform(0, mean_amount * 2))
                amount = float(np.round(amount, decimals=2))
                if terminals:
                    times.append(time_tx + day * SECONDS_PER_DAY)
                    chosen.append(py.choice(terminals))
                    amounts.append(amount)
    return times, chosen, amounts


def _sample(population: int, n: int, day: int) -> IntArray:
    """pandas' ``Series.sample(n=n, random_state=day)`` of a 0..population-1 id column."""
    return np.random.RandomState(day).permutation(population)[:n].astype(np.int64)


def handbook_days(config: SimConfig | None = None) -> Iterator[Day]:
    """The handbook's data set for ``config``'s sizes, days and fraud scenarios, day by day
    (its ``seed`` is not used: the handbook's seeds are fixed)."""
    cfg = config or SimConfig()
    customers = customer_profiles(cfg.n_customers)
    terminals = terminal_profiles(cfg.n_terminals)
    reach = terminals_within_radius(customers, terminals, cfg.radius)
    parts: list[tuple[list[int], list[int], list[float]]] = []
    for c in range(cfg.n_customers):
        parts.append(
            _customer_transactions(
                c,
                float(customers.mean_amount[c]),
                float(customers.std_amount[c]),
                float(customers.mean_nb_tx_per_day[c]),
                [int(t) for t in reach.of(c)],
                cfg.nb_days,
            )
        )
    counts = np.array([len(p[0]) for p in parts], dtype=np.int64)
    customer = np.repeat(np.arange(cfg.n_customers, dtype=np.int64), counts)
    time_s = np.array([t for p in parts for t in p[0]], dtype=np.int64)
    terminal = np.array([t for p in parts for t in p[1]], dtype=np.int64)
    amount: FloatArray = np.array([a for p in parts for a in p[2]], dtype=np.float64)
    # sort_values("TX_DATETIME") then reset_index: the row number becomes the transaction id
    order = np.argsort(time_s, kind="stable")
    customer, time_s, terminal, amount = (
        customer[order],
        time_s[order],
        terminal[order],
        amount[order],
    )
    tx_day = time_s // SECONDS_PER_DAY
    fraud = amount > cfg.fraud_amount_threshold_cents / 100
    scenario = np.where(fraud, 1, 0).astype(np.int8)
    last_day = int(tx_day.max()) if tx_day.size else 0
    drawn_terminals: dict[int, IntArray] = {}
    for day in range(last_day):
        bad = _sample(cfg.n_terminals, cfg.compromised_terminals_per_day, day)
        drawn_terminals[day] = bad
        hit = (
            (tx_day >= day) & (tx_day < day + cfg.terminal_compromise_days) & np.isin(terminal, bad)
        )
        fraud[hit] = True
        scenario[hit] = 2
    drawn_customers: dict[int, IntArray] = {}
    for day in range(last_day):
        victims = _sample(cfg.n_customers, cfg.compromised_customers_per_day, day)
        drawn_customers[day] = victims
        window = (
            (tx_day >= day)
            & (tx_day < day + cfg.customer_compromise_days)
            & np.isin(customer, victims)
        )
        candidates = [int(i) for i in np.flatnonzero(window)]
        py = random.Random(day)  # noqa: S311 - the handbook's own generator
        # int(n / 3), as the handbook writes it (n * (1 / 3) can fall just below an integer)
        k = int(len(candidates) / (1 / cfg.customer_fraud_share))
        picked = py.sample(candidates, k=k)
        if picked:
            amount[picked] = amount[picked] * cfg.customer_fraud_multiplier
            fraud[picked] = True
            scenario[picked] = 3
    amount_cents = np.rint(amount * 100).astype(np.int64)
    tx_id = np.arange(time_s.size, dtype=np.int64)
    bounds = np.searchsorted(tx_day, np.arange(cfg.nb_days + 1))
    none = np.zeros(0, np.int64)
    for day in range(cfg.nb_days):
        lo, hi = int(bounds[day]), int(bounds[day + 1])
        yield Day(
            day=day,
            tx_id=tx_id[lo:hi],
            time_s=time_s[lo:hi],
            customer=customer[lo:hi],
            terminal=terminal[lo:hi],
            amount_cents=amount_cents[lo:hi],
            fraud=fraud[lo:hi],
            scenario=scenario[lo:hi],
            compromised_terminals=drawn_terminals.get(day, none),
            compromised_customers=drawn_customers.get(day, none),
        )
