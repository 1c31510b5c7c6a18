"""The feature registry: every online feature's name, entity, view, window, label delay and type.

The first fifteen are the handbook's baseline features (Le Borgne et al., "Reproducible Machine
Learning for Credit Card Fraud Detection", chapter "Baseline feature transformation"), in the
handbook's order; the extras follow. A *view* groups the features of one entity that are written
together (one Redis hash field per view). The ``request`` view holds what depends on the scored
transaction itself (its amount, its time): it is computed by ``complete()`` only, never stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from vigie_contracts.events.features import EntityType

from .errors import UnknownFeature

FeatureKind = Literal["float", "int", "bool"]

LABEL_DELAY = timedelta(days=7)
"""The handbook's delay d: a terminal's (or merchant's) frauds are known d days after the fact."""

VIEW_REQUEST = "request"
VIEW_CUSTOMER = "customer_windows"
VIEW_CUSTOMER_CLICKSTREAM = "customer_clickstream"
VIEW_CARD = "card_windows"
VIEW_TERMINAL = "terminal_risk"
VIEW_MERCHANT = "merchant_risk"


@dataclass(frozen=True, slots=True)
class FeatureDef:
    """One feature. ``window`` is the look-back n; ``delay`` the label delay d of risk windows,
    whose transactions lie in (t - (d + n), t - d]. ``freshness`` is how stale a stored value may be
    before a reader should treat it as missing."""

    name: str
    entity: EntityType
    view: str
    window: timedelta | None
    delay: timedelta | None
    kind: FeatureKind
    description: str
    freshness: timedelta


_DAY = timedelta(days=1)
_HOUR = timedelta(hours=1)
_SECOND = timedelta(seconds=1)
_C, _K, _T, _M = EntityType.CUSTOMER, EntityType.CARD, EntityType.TERMINAL, EntityType.MERCHANT


def _customer_window(n: int) -> tuple[FeatureDef, FeatureDef]:
    w = timedelta(days=n)
    return (
        FeatureDef(f"customer_nb_tx_{n}d", _C, VIEW_CUSTOMER, w, None, "int",
                   f"customer's transactions in (t - {n}d, t], this one included", _SECOND),
        FeatureDef(f"customer_avg_amount_{n}d", _C, VIEW_CUSTOMER, w, None, "float",
                   f"mean amount of the customer's transactions in (t - {n}d, t]", _SECOND),
    )


def _risk_window(entity: EntityType, view: str, n: int) -> tuple[FeatureDef, FeatureDef]:
    w, who = timedelta(days=n), entity.value
    span = f"(t - {7 + n}d, t - 7d]"
    return (
        FeatureDef(f"{who}_nb_tx_{n}d", entity, view, w, LABEL_DELAY, "int",
                   f"{who}'s transactions in {span}", _HOUR),
        FeatureDef(f"{who}_risk_{n}d", entity, view, w, LABEL_DELAY, "float",
                   f"share of the {who}'s transactions in {span} labelled fraud by t (0 if none)",
                   _HOUR),
    )


FEATURES: tuple[FeatureDef, ...] = (
    FeatureDef("amount", _C, VIEW_REQUEST, None, None, "float", "amount_minor / 100", _SECOND),
    FeatureDef("during_weekend", _C, VIEW_REQUEST, None, None, "bool",
               "1 if occurred_at (UTC) is a Saturday or Sunday", _SECOND),
    FeatureDef("during_night", _C, VIEW_REQUEST, None, None, "bool",
               "1 if the hour of occurred_at (UTC) is <= 6", _SECOND),
    *_customer_window(1),
    *_customer_window(7),
    *_customer_window(30),
    *_risk_window(_T, VIEW_TERMINAL, 1),
    *_risk_window(_T, VIEW_TERMINAL, 7),
    *_risk_window(_T, VIEW_TERMINAL, 30),
    # --- extras
    FeatureDef("customer_nb_tx_1h", _C, VIEW_CUSTOMER, _HOUR, None, "int",
               "customer's transactions in (t - 1h, t], this one included", _SECOND),
    FeatureDef("customer_avg_amount_1h", _C, VIEW_CUSTOMER, _HOUR, None, "float",
               "mean amount of the customer's transactions in (t - 1h, t]", _SECOND),
    FeatureDef("customer_seconds_since_previous", _C, VIEW_CUSTOMER, timedelta(days=30), None,
               "float", "seconds since the customer's previous transaction, capped at 30 days "
               "(30 days when none)", _SECOND),
    FeatureDef("customer_distinct_terminals_1d", _C, VIEW_CUSTOMER, _DAY, None, "int",
               "distinct terminals of the customer's transactions in (t - 1d, t]", _SECOND),
    FeatureDef("customer_distinct_merchants_1d", _C, VIEW_CUSTOMER, _DAY, None, "int",
               "distinct merchants of the customer's transactions in (t - 1d, t]", _SECOND),
    FeatureDef("customer_amount_ratio_30d", _C, VIEW_REQUEST, timedelta(days=30), None, "float",
               "amount / customer_avg_amount_30d (0 when the average is 0)", _SECOND),
    FeatureDef("customer_amount_median_ratio_30d", _C, VIEW_REQUEST, timedelta(days=30), None,
               "float", "amount / the median amount of the customer's transactions in "
               "(t - 30d, t], this one included (0 when the median is 0)", _SECOND),
    FeatureDef("customer_amount_zscore_30d", _C, VIEW_REQUEST, timedelta(days=30), None, "float",
               "(amount - mean) / population standard deviation of the amounts of the "
               "customer's transactions in (t - 30d, t], this one included (0 when it is 0)",
               _SECOND),
    FeatureDef("customer_high_amounts_7d", _C, VIEW_REQUEST, timedelta(days=7), None, "int",
               "the customer's earlier transactions in (t - 7d, t] whose amount is above 3x "
               "the median of customer_amount_median_ratio_30d", _SECOND),
    FeatureDef("customer_refund_ratio_30d", _C, VIEW_CUSTOMER, timedelta(days=30), None, "float",
               "refunds created in (t - 30d, t] / customer_nb_tx_30d", _SECOND),
    FeatureDef("card_nb_tx_1h", _K, VIEW_CARD, _HOUR, None, "int",
               "card's transactions in (t - 1h, t] (0 without a card)", _SECOND),
    FeatureDef("card_nb_tx_1d", _K, VIEW_CARD, _DAY, None, "int",
               "card's transactions in (t - 1d, t] (0 without a card)", _SECOND),
    FeatureDef("card_avg_amount_1d", _K, VIEW_CARD, _DAY, None, "float",
               "mean amount of the card's transactions in (t - 1d, t] (0 without a card)", _SECOND),
    *_risk_window(_M, VIEW_MERCHANT, 1),
    *_risk_window(_M, VIEW_MERCHANT, 7),
    *_risk_window(_M, VIEW_MERCHANT, 30),
    FeatureDef("customer_sessions_1h", _C, VIEW_CUSTOMER_CLICKSTREAM, _HOUR, None, "int",
               "customer's clickstream sessions ended in (t - 1h, t]", timedelta(seconds=30)),
    FeatureDef("customer_failed_logins_1h", _C, VIEW_CUSTOMER_CLICKSTREAM, _HOUR, None, "int",
               "failed logins of the customer's sessions ended in (t - 1h, t]",
               timedelta(seconds=30)),
)

HANDBOOK_FEATURES: tuple[str, ...] = tuple(f.name for f in FEATURES[:15])
FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)

_BY_NAME = {f.name: f for f in FEATURES}


def feature(name: str) -> FeatureDef:
    """The definition of ``name``; raises UnknownFeature (a KeyError)."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise UnknownFeature(name) from None


def views(entity: EntityType) -> dict[str, tuple[str, ...]]:
    """The stored views of an entity type and their feature names, in registry order."""
    out: dict[str, list[str]] = {}
    for f in FEATURES:
        if f.entity == entity and f.view != VIEW_REQUEST:
            out.setdefault(f.view, []).append(f.name)
    return {view: tuple(names) for view, names in out.items()}
