"""The transaction simulator of the fraud-detection handbook, streamed day by day.

Le Borgne et al., *Reproducible Machine Learning for Credit Card Fraud Detection*, chapter
"Transaction data simulator": customer and terminal profiles on a 100x100 grid, genuine transactions
from each customer's profile, then three fraud scenarios. The handbook builds the whole table in
memory and labels it afterwards; here :meth:`Simulator.days` yields one labelled day at a time.

Scenario 3 picks a third of a compromised customer's transactions over the *next* 14 days, so the
simulator generates the genuine transactions ``customer_compromise_days`` ahead and labels the
buffered days in place. Genuine draws, fraud draws and profiles use separate random streams (spawned
from one ``SeedSequence``), so the look-ahead does not change which numbers each part receives.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt

SECONDS_PER_DAY = 86_400

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class SimConfig:
    """Every size of the simulated world; the defaults are the handbook's full-scale data set."""

    n_customers: int = 5_000
    n_terminals: int = 10_000
    nb_days: int = 183
    start: datetime = datetime(2018, 4, 1, tzinfo=UTC)
    radius: float = 5.0
    seed: int = 0
    fraud_amount_threshold_cents: int = 22_000
    compromised_terminals_per_day: int = 2
    terminal_compromise_days: int = 28
    compromised_customers_per_day: int = 3
    customer_compromise_days: int = 14
    customer_fraud_share: float = 1 / 3
    customer_fraud_multiplier: int = 5

    def __post_init__(self) -> None:
        if self.n_customers < 1 or self.n_terminals < 1 or self.nb_days < 1:
            raise ValueError("customers, terminals and days must each be at least 1")
        if self.radius <= 0:
            raise ValueError("the radius must be positive")
        if self.start.tzinfo is None:
            raise ValueError("the start must be timezone-aware")


@dataclass(frozen=True, slots=True)
class CustomerProfiles:
    x: FloatArray
    y: FloatArray
    mean_amount: FloatArray
    std_amount: FloatArray
    mean_nb_tx_per_day: FloatArray


@dataclass(frozen=True, slots=True)
class TerminalProfiles:
    x: FloatArray
    y: FloatArray


@dataclass(frozen=True, slots=True)
class Reach:
    """The terminals each customer uses, as compressed rows: customer ``c`` uses
    ``terminals[offsets[c]:offsets[c + 1]]``."""

    offsets: IntArray
    terminals: IntArray

    def of(self, customer: int) -> IntArray:
        return self.terminals[self.offsets[customer] : self.offsets[customer + 1]]

    @property
    def counts(self) -> IntArray:
        return np.diff(self.offsets)


@dataclass(slots=True)
class Day:
    """One simulated day's transactions, sorted by time. ``time_s`` counts seconds from the start
    of the simulation (whole seconds; a replayed file's may carry fractions); ``scenario`` is 0
    for genuine, else the last fraud scenario that applied (the handbook's TX_FRAUD_SCENARIO)."""

    day: int
    tx_id: IntArray
    time_s: IntArray | FloatArray
    customer: IntArray
    terminal: IntArray
    amount_cents: IntArray
    fraud: BoolArray
    scenario: npt.NDArray[np.int8]
    # Drawn this day: windows for scenario 2 (terminals) and scenario 3 (customers) open today.
    compromised_terminals: IntArray
    compromised_customers: IntArray

    def __len__(self) -> int:
        return int(self.tx_id.size)


def customer_profiles(n: int, rng: np.random.Generator) -> CustomerProfiles:
    mean_amount = rng.uniform(5, 100, n)
    return CustomerProfiles(
        x=rng.uniform(0, 100, n),
        y=rng.uniform(0, 100, n),
        mean_amount=mean_amount,
        std_amount=mean_amount / 2,
        mean_nb_tx_per_day=rng.uniform(0, 4, n),
    )


def terminal_profiles(n: int, rng: np.random.Generator) -> TerminalProfiles:
    return TerminalProfiles(x=rng.uniform(0, 100, n), y=rng.uniform(0, 100, n))


def terminals_within_radius(
    customers: CustomerProfiles, terminals: TerminalProfiles, radius: float, chunk: int = 256
) -> Reach:
    """The handbook's rule: a customer uses every terminal strictly closer than ``radius``."""
    t_xy = np.stack([terminals.x, terminals.y], axis=1)
    rows: list[IntArray] = []
    n = customers.x.size
    # Chunked so the full distance matrix (5,000 x 10,000 by default) never sits in memory at once.
    for lo in range(0, n, chunk):
        c_xy = np.stack([customers.x[lo : lo + chunk], customers.y[lo : lo + chunk]], axis=1)
        dist = np.sqrt(((c_xy[:, None, :] - t_xy[None, :, :]) ** 2).sum(axis=2))
        rows.extend(np.flatnonzero(d < radius).astype(np.int64) for d in dist)
    counts = np.array([r.size for r in rows], dtype=np.int64)
    offsets = np.concatenate([np.zeros(1, np.int64), np.cumsum(counts)])
    flat = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    return Reach(offsets=offsets, terminals=flat.astype(np.int64))


@dataclass(slots=True)
class _RawDay:
    day: int
    time_s: IntArray
    customer: IntArray
    terminal: IntArray
    amount_cents: IntArray
    fraud: BoolArray
    scenario: npt.NDArray[np.int8]
    multiplied: BoolArray


def genuine_day(
    day: int, customers: CustomerProfiles, reach: Reach, rng: np.random.Generator
) -> _RawDay:
    """One day of genuine transactions, vectorised over customers, sorted by (time, customer)."""
    nb_tx = rng.poisson(customers.mean_nb_tx_per_day)
    customer = np.repeat(np.arange(nb_tx.size, dtype=np.int64), nb_tx)
    times = rng.normal(SECONDS_PER_DAY / 2, 20_000, customer.size)
    amount = rng.normal(customers.mean_amount[customer], customers.std_amount[customer])
    negative = amount < 0
    amount[negative] = rng.uniform(0, 2 * customers.mean_amount[customer[negative]])
    pick = rng.random(customer.size)
    counts = reach.counts
    # The handbook drops times outside the day and customers who reach no terminal.
    keep = (times >= 0) & (times < SECONDS_PER_DAY) & (counts[customer] > 0)
    customer, times, amount, pick = customer[keep], times[keep], amount[keep], pick[keep]
    slot = np.minimum((pick * counts[customer]).astype(np.int64), counts[customer] - 1)
    terminal = reach.terminals[reach.offsets[customer] + slot]
    time_s = times.astype(np.int64) + day * SECONDS_PER_DAY
    order = np.lexsort((customer, time_s))
    n = int(order.size)
    return _RawDay(
        day=day,
        time_s=time_s[order],
        customer=customer[order],
        terminal=terminal[order],
        amount_cents=np.rint(amount[order] * 100).astype(np.int64),
        fraud=np.zeros(n, np.bool_),
        scenario=np.zeros(n, np.int8),
        multiplied=np.zeros(n, np.bool_),
    )


def label_amounts(raw: _RawDay, threshold_cents: int) -> None:
    """Scenario 1: every amount above the threshold (220) is fraud."""
    over = raw.amount_cents > threshold_cents
    raw.fraud[over] = True
    raw.scenario[over] = 1


def label_terminals(raw: _RawDay, compromised_until: dict[int, int]) -> None:
    """Scenario 2: transactions at a terminal inside its compromise window are fraud.
    ``compromised_until`` maps a terminal to the first day after its latest window."""
    if not compromised_until:
        return
    bad = np.fromiter((t for t, end in compromised_until.items() if raw.day < end), np.int64)
    hit = np.isin(raw.terminal, bad)
    raw.fraud[hit] = True
    # The handbook labels scenario 3 last, so its label wins where both apply.
    raw.scenario[hit & ~raw.multiplied] = 2


def label_customers(
    window: list[_RawDay],
    customers: IntArray,
    share: float,
    multiplier: int,
    rng: np.random.Generator,
) -> None:
    """Scenario 3: a random ``share`` of the compromised customers' transactions over the window
    get their amount multiplied and are fraud. A transaction is multiplied at most once, where the
    handbook could multiply one twice (x25) when two windows overlap."""
    members = [np.flatnonzero(np.isin(d.customer, customers)) for d in window]
    total = sum(int(m.size) for m in members)
    candidates = [
        (i, int(j)) for i, m in enumerate(members) for j in m if not window[i].multiplied[j]
    ]
    k = min(int(total * share), len(candidates))
    if k == 0:
        return
    for pos in rng.choice(len(candidates), size=k, replace=False):
        i, j = candidates[int(pos)]
        d = window[i]
        d.amount_cents[j] *= multiplier
        d.multiplied[j] = True
        d.fraud[j] = True
        d.scenario[j] = 3


class Simulator:
    """A seeded world; :meth:`days` streams its labelled transactions, one day at a time."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        profiles_seq, terminals_seq, genuine_seq, fraud_seq, world_seq = np.random.SeedSequence(
            config.seed
        ).spawn(5)
        self.customers = customer_profiles(config.n_customers, np.random.default_rng(profiles_seq))
        self.terminals = terminal_profiles(config.n_terminals, np.random.default_rng(terminals_seq))
        self.reach = terminals_within_radius(self.customers, self.terminals, config.radius)
        self._genuine_seq = genuine_seq
        self._fraud_seq = fraud_seq
        # For the OLTP world (names, cards, merchants): independent of the transactions.
        self.world_seed = world_seq

    def genuine_days(self) -> Iterator[tuple[IntArray, IntArray]]:
        """Each day's (customer, amount in cents) before any fraud: what :meth:`days` labels."""
        rng = np.random.default_rng(self._genuine_seq)
        for day in range(self.config.nb_days):
            raw = genuine_day(day, self.customers, self.reach, rng)
            yield raw.customer, raw.amount_cents

    def days(self) -> Iterator[Day]:
        """Each day once labelled by all three scenarios; a fresh iterator replays the same data."""
        cfg = self.config
        genuine_rng = np.random.default_rng(self._genuine_seq)
        fraud_rng = np.random.default_rng(self._fraud_seq)
        ahead = max(cfg.customer_compromise_days, 1)
        buffer: deque[_RawDay] = deque()
        next_day = 0
        compromised_until: dict[int, int] = {}
        next_tx_id = 0
        for day in range(cfg.nb_days):
            while next_day < cfg.nb_days and next_day < day + ahead:
                raw = genuine_day(next_day, self.customers, self.reach, genuine_rng)
                label_amounts(raw, cfg.fraud_amount_threshold_cents)
                buffer.append(raw)
                next_day += 1
            n_t = min(cfg.compromised_terminals_per_day, cfg.n_terminals)
            bad_terminals = fraud_rng.choice(cfg.n_terminals, size=n_t, replace=False)
            for t in bad_terminals:
                compromised_until[int(t)] = day + cfg.terminal_compromise_days
            n_c = min(cfg.compromised_customers_per_day, cfg.n_customers)
            victims = fraud_rng.choice(cfg.n_customers, size=n_c, replace=False).astype(np.int64)
            label_customers(
                list(buffer)[: cfg.customer_compromise_days],
                victims,
                cfg.customer_fraud_share,
                cfg.customer_fraud_multiplier,
                fraud_rng,
            )
            today = buffer.popleft()
            # A terminal's window is known by the day its transactions are emitted.
            label_terminals(today, compromised_until)
            compromised_until = {t: e for t, e in compromised_until.items() if e > day + 1}
            n = today.time_s.size
            yield Day(
                day=day,
                tx_id=np.arange(next_tx_id, next_tx_id + n, dtype=np.int64),
                time_s=today.time_s,
                customer=today.customer,
                terminal=today.terminal,
                amount_cents=today.amount_cents,
                fraud=today.fraud,
                scenario=today.scenario,
                compromised_terminals=bad_terminals.astype(np.int64),
                compromised_customers=victims,
            )
            next_tx_id += n
