"""What the simulator's world and days become in the OLTP database, as plain values (no I/O).

:func:`build_world` gives the reference rows (customers, merchants, terminals, one card per
customer); :func:`actions` turns the simulated days into a time-ordered stream of writes: each
transaction, a chargeback (dispute) for each fraud ``label_delay`` after it, and a refund for a
small share of genuine payments. Writes due after the simulated window are never emitted, as in a
real data set cut at its last day.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import numpy as np

from vigie_traffic.simulator import SECONDS_PER_DAY, Day, FloatArray, Simulator

FIRST_NAMES = (
    "Camille", "Louis", "Emma", "Gabriel", "Léa", "Hugo", "Chloé", "Arthur", "Manon", "Jules",
    "Inès", "Lucas", "Sarah", "Adam", "Jade", "Nathan", "Alice", "Raphaël", "Lina", "Tom",
    "Zoé", "Paul", "Anna", "Victor", "Julie", "Noah", "Clara", "Ethan", "Rose", "Maël",
)  # fmt: skip
LAST_NAMES = (
    "Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy",
    "Moreau", "Simon", "Laurent", "Lefebvre", "Michel", "Garcia", "David", "Bertrand", "Roux",
    "Vincent", "Fournier", "Morel", "Girard", "André", "Mercier", "Dupont", "Lambert", "Bonnet",
    "Fontaine", "Rousseau", "Blanc",
)  # fmt: skip
CITIES = ("Paris", "Lyon", "Marseille", "Toulouse", "Nantes", "Lille", "Bordeaux", "Rennes")
# (MCC, trade name pattern): a handful of everyday merchant categories.
MERCHANT_KINDS = (
    ("5411", "Épicerie {}"),
    ("5812", "Restaurant {}"),
    ("5541", "Station {}"),
    ("5912", "Pharmacie {}"),
    ("5732", "Électro {}"),
    ("5999", "Bazar {}"),
)
TERMINAL_TYPES = ("pos", "ecommerce", "mpos")
TERMINAL_TYPE_WEIGHTS = (0.8, 0.15, 0.05)
# Test BINs: numbers that look real to a Luhn check but belong to no issuer.
BINS = {"visa": "400000", "mastercard": "555555"}
FRAUD_REASON_CODES = {"visa": "10.4", "mastercard": "4837"}
DECLINE_REASONS = ("insufficient_funds", "do_not_honor", "expired_card", "incorrect_pin")
ASCII = str.maketrans("éèëçàïîô", "eeecaiio")


def luhn_check_digit(body: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:  # doubled: these positions sit just left of the check digit
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return str((10 - total % 10) % 10)


def luhn_valid(pan: str) -> bool:
    return pan.isdigit() and luhn_check_digit(pan[:-1]) == pan[-1]


@dataclass(frozen=True, slots=True)
class CustomerRow:
    external_ref: str
    full_name: str
    email: str
    phone: str
    date_of_birth: date
    location_x: float | None  # None: the source has no position (a replayed file)
    location_y: float | None


@dataclass(frozen=True, slots=True)
class MerchantRow:
    name: str
    mcc: str
    city: str


@dataclass(frozen=True, slots=True)
class TerminalRow:
    merchant: int
    terminal_type: str
    location_x: float | None
    location_y: float | None


@dataclass(frozen=True, slots=True)
class CardRow:
    customer: int
    pan: str
    brand: str
    expiry_month: int
    expiry_year: int


@dataclass(frozen=True, slots=True)
class World:
    customers: list[CustomerRow]
    merchants: list[MerchantRow]
    terminals: list[TerminalRow]
    cards: list[CardRow]  # cards[i] belongs to customer i


Positions = tuple[FloatArray, FloatArray]
"""x and y on the 100x100 grid, one entry per customer or terminal; NaN where unknown."""


def _coordinate(value: float) -> float | None:
    return None if math.isnan(value) else value


def build_world(
    ref_prefix: str,
    *,
    seed: np.random.SeedSequence | int,
    customers: Positions,
    terminals: Positions,
    issued_year: int,
) -> World:
    """Reference rows for ``customers`` and ``terminals`` (indexed as given), their names, cards
    and merchants drawn from ``seed``; ``ref_prefix`` only names the run."""
    rng = np.random.default_rng(seed)
    n_customers, n_terminals = customers[0].size, terminals[0].size
    rows: list[CustomerRow] = []
    cards: list[CardRow] = []
    for i in range(n_customers):
        first = FIRST_NAMES[int(rng.integers(len(FIRST_NAMES)))]
        last = LAST_NAMES[int(rng.integers(len(LAST_NAMES)))]
        born = date(1950, 1, 1) + timedelta(days=int(rng.integers(0, 52 * 365)))
        phone = "+33 6 " + " ".join(f"{int(rng.integers(100)):02d}" for _ in range(4))
        email = f"{first}.{last}{i}@example.com".lower().translate(ASCII)
        rows.append(
            CustomerRow(
                external_ref=f"{ref_prefix}-c{i}",
                full_name=f"{first} {last}",
                email=email,
                phone=phone,
                date_of_birth=born,
                location_x=_coordinate(float(customers[0][i])),
                location_y=_coordinate(float(customers[1][i])),
            )
        )
        brand = "visa" if rng.random() < 0.6 else "mastercard"
        body = BINS[brand] + "".join(str(int(d)) for d in rng.integers(0, 10, 9))
        cards.append(
            CardRow(
                customer=i,
                pan=body + luhn_check_digit(body),
                brand=brand,
                expiry_month=int(rng.integers(1, 13)),
                expiry_year=issued_year + int(rng.integers(1, 5)),
            )
        )
    # About four terminals per merchant: a shop with a few tills.
    n_merchants = max(1, n_terminals // 4)
    merchants = []
    for _ in range(n_merchants):
        mcc, pattern = MERCHANT_KINDS[int(rng.integers(len(MERCHANT_KINDS)))]
        owner = LAST_NAMES[int(rng.integers(len(LAST_NAMES)))]
        city = CITIES[int(rng.integers(len(CITIES)))]
        merchants.append(MerchantRow(name=pattern.format(owner), mcc=mcc, city=city))
    owners = rng.integers(0, n_merchants, n_terminals)
    types = rng.choice(len(TERMINAL_TYPES), size=n_terminals, p=TERMINAL_TYPE_WEIGHTS)
    till_rows = [
        TerminalRow(
            merchant=int(owners[t]),
            terminal_type=TERMINAL_TYPES[int(types[t])],
            location_x=_coordinate(float(terminals[0][t])),
            location_y=_coordinate(float(terminals[1][t])),
        )
        for t in range(n_terminals)
    ]
    return World(customers=rows, merchants=merchants, terminals=till_rows, cards=cards)


def simulator_world(sim: Simulator, ref_prefix: str) -> World:
    """The simulator's world: its customers and terminals where it placed them."""
    return build_world(
        ref_prefix,
        seed=sim.world_seed,
        customers=(sim.customers.x, sim.customers.y),
        terminals=(sim.terminals.x, sim.terminals.y),
        issued_year=sim.config.start.year,
    )


@dataclass(frozen=True, slots=True)
class ActionConfig:
    label_delay: timedelta = timedelta(days=7)
    decline_share: float = 0.02
    refund_share: float = 0.01
    refund_min_delay: timedelta = timedelta(days=1)
    refund_max_delay: timedelta = timedelta(days=10)


@dataclass(frozen=True, slots=True)
class TxWrite:
    tx: int  # the simulator's transaction id
    at: datetime
    customer: int
    terminal: int
    amount_cents: int
    fraud: bool  # never written: the platform learns it from the dispute
    declined: bool
    decline_reason: str | None
    channel: str
    entry_mode: str
    follow_up: bool  # a dispute or refund will refer to this row


@dataclass(frozen=True, slots=True)
class DisputeWrite:
    tx: int
    at: datetime
    amount_cents: int
    reason_code: str


@dataclass(frozen=True, slots=True)
class RefundWrite:
    tx: int
    at: datetime
    amount_cents: int


Action = TxWrite | DisputeWrite | RefundWrite


@dataclass(order=True)
class _Due:
    time_s: float
    seq: int
    action: DisputeWrite | RefundWrite = field(compare=False)


def _channel(terminal_type: str, rng: np.random.Generator) -> tuple[str, str]:
    if terminal_type == "ecommerce":
        return "ecommerce", "card_on_file"
    if terminal_type == "mpos":
        return "pos", "contactless"
    return "pos", "chip" if rng.random() < 0.55 else "contactless"


@dataclass(frozen=True, slots=True)
class Timeline:
    """Where the days' ``time_s`` (seconds) count from, where the window ends, and the seed of the
    statuses and channels :func:`actions` draws."""

    start: datetime
    #: writes due at or after it are not emitted (a data set cut at its last day); None: all are
    end_s: float | None
    seed: np.random.SeedSequence | int


def simulator_timeline(sim: Simulator) -> Timeline:
    return Timeline(
        start=sim.config.start,
        end_s=sim.config.nb_days * SECONDS_PER_DAY,
        seed=np.random.SeedSequence(sim.config.seed).spawn(6)[5],
    )


def actions(
    world: World, days: Iterable[Day], timeline: Timeline, config: ActionConfig | None = None
) -> Iterator[Action]:
    """The OLTP writes of the days, in time order.

    A declined payment moves no money, so it is never disputed nor refunded: its fraud label is
    lost, as a real issuer loses it. A zero-amount payment is neither (the tables forbid it).
    """
    cfg = config or ActionConfig()
    start = timeline.start
    end_s = math.inf if timeline.end_s is None else timeline.end_s
    rng = np.random.default_rng(timeline.seed)
    delay_s = cfg.label_delay.total_seconds()
    due: list[_Due] = []
    seq = 0

    def flush(until_s: float) -> Iterator[Action]:
        while due and due[0].time_s <= until_s:
            yield heapq.heappop(due).action

    for day in days:
        n = len(day)
        declined = rng.random(n) < cfg.decline_share
        refunded = rng.random(n) < cfg.refund_share
        refund_after = rng.uniform(
            cfg.refund_min_delay.total_seconds(), cfg.refund_max_delay.total_seconds(), n
        )
        for j in range(n):
            # float: a replayed file's times keep their fractions of a second
            t = float(day.time_s[j])
            yield from flush(t)
            tx = int(day.tx_id[j])
            amount = int(day.amount_cents[j])
            fraud = bool(day.fraud[j])
            customer = int(day.customer[j])
            terminal = int(day.terminal[j])
            is_declined = bool(declined[j])
            follow: _Due | None = None
            if not is_declined and amount > 0:
                if fraud and t + delay_s < end_s:
                    brand = world.cards[customer].brand
                    dispute = DisputeWrite(
                        tx=tx,
                        at=start + timedelta(seconds=t + delay_s),
                        amount_cents=amount,
                        reason_code=FRAUD_REASON_CODES[brand],
                    )
                    follow = _Due(t + delay_s, seq, dispute)
                elif not fraud and refunded[j] and t + refund_after[j] < end_s:
                    at_s = t + float(refund_after[j])
                    refund = RefundWrite(
                        tx=tx, at=start + timedelta(seconds=at_s), amount_cents=amount
                    )
                    follow = _Due(at_s, seq, refund)
            channel, entry_mode = _channel(world.terminals[terminal].terminal_type, rng)
            yield TxWrite(
                tx=tx,
                at=start + timedelta(seconds=t),
                customer=customer,
                terminal=terminal,
                amount_cents=amount,
                fraud=fraud,
                declined=is_declined,
                decline_reason=(
                    DECLINE_REASONS[int(rng.integers(len(DECLINE_REASONS)))]
                    if is_declined
                    else None
                ),
                channel=channel,
                entry_mode=entry_mode,
                follow_up=follow is not None,
            )
            if follow is not None:
                heapq.heappush(due, follow)
                seq += 1
        yield from flush((day.day + 1) * SECONDS_PER_DAY - 1e-9)
    if timeline.end_s is None:
        yield from flush(math.inf)
