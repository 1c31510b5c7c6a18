"""The model interface: determinism, exact checkpoint round trip, explanations, and learning."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator

import pytest
from sklearn.metrics import roc_auc_score  # type: ignore[import-untyped]

from vigie_inference.model import (
    DEFAULT_CHALLENGERS,
    DEFAULT_CHAMPION,
    KINDS,
    ColdStartModel,
    FraudModel,
    ModelStateError,
    RiverModel,
    UnknownModelKind,
    build_model,
    from_bytes,
)
from vigie_inference.model.base import pack, unpack
from vigie_inference.model.online import RIVER_VERSION

Example = tuple[dict[str, float], bool]


def toy_stream(n: int, seed: int) -> Iterator[Example]:
    """Separable: a fraud is a large amount for the customer, at a risky terminal, or both."""
    rng = random.Random(seed)
    for _ in range(n):
        fraud = rng.random() < 0.2
        ratio = rng.uniform(3, 6) if fraud else rng.uniform(0.2, 1.8)
        yield (
            {
                "amount": 50.0 * ratio,
                "customer_avg_amount_30d": 50.0,
                "customer_amount_ratio_30d": ratio,
                "customer_nb_tx_1d": float(rng.randint(1, 6)),
                "terminal_risk_7d": rng.uniform(0.3, 1.0) if fraud else rng.uniform(0, 0.05),
                "during_night": float(rng.random() < 0.2),
            },
            fraud,
        )


def drive(model: FraudModel, examples: list[Example]) -> list[float]:
    """Score then learn each example (the prequential order without the delay)."""
    scores = []
    for x, y in examples:
        scores.append(model.predict_proba(x))
        model.learn(x, y)
    return scores


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_kind_learns_a_separable_stream(kind: str) -> None:
    model = build_model(kind, seed=1)
    assert model.kind == kind and model.name == kind and not model.cold_start
    drive(model, list(toy_stream(1500, seed=2)))
    assert model.n_learned == 1500
    test = list(toy_stream(400, seed=3))
    scores = [model.predict_proba(x) for x, _ in test]
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert roc_auc_score([y for _, y in test], scores) > 0.95


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_same_seed_same_calls_same_scores_whatever_the_key_order(kind: str) -> None:
    examples = list(toy_stream(600, seed=4))
    reordered = [(dict(reversed(list(x.items()))), y) for x, y in examples]
    assert drive(build_model(kind, seed=5), examples) == drive(
        build_model(kind, seed=5), reordered
    )


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_round_trip_predicts_and_learns_identically(kind: str) -> None:
    examples = list(toy_stream(900, seed=6))
    model = build_model(kind, seed=7, name=f"{kind}-v3")
    drive(model, examples[:500])
    restored = from_bytes(model.to_bytes())
    assert isinstance(restored, RiverModel)
    assert (restored.name, restored.kind, restored.n_learned) == (f"{kind}-v3", kind, 500)
    assert drive(restored, examples[500:]) == drive(model, examples[500:])
    # pickles of equal objects need not be equal bytes: compare behaviour after a second trip
    again = from_bytes(restored.to_bytes())
    probes = [x for x, _ in toy_stream(50, seed=10)]
    assert [again.predict_proba(x) for x in probes] == [model.predict_proba(x) for x in probes]


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_explain_gives_the_top_features_with_values(kind: str) -> None:
    model = build_model(kind)
    drive(model, list(toy_stream(1500, seed=8)))
    x = {"amount": 250.0, "customer_avg_amount_30d": 50.0, "customer_amount_ratio_30d": 5.0,
         "terminal_risk_7d": 0.8}
    top = model.explain(x, top=3)
    assert 1 <= len(top) <= 3
    assert all(isinstance(f, str) and isinstance(v, float) and isinstance(c, float)
               for f, v, c in top)
    assert [abs(c) for _, _, c in top] == sorted((abs(c) for _, _, c in top), reverse=True)
    assert all(v == x.get(f, 0.0) for f, v, _ in top)
    # the signal features push this obvious fraud up
    assert top[0][0] in {"amount", "customer_amount_ratio_30d", "terminal_risk_7d",
                         "customer_avg_amount_1d", "customer_avg_amount_7d",
                         "customer_avg_amount_1h", "card_avg_amount_1d"}
    assert top[0][2] > 0


def test_linear_contributions_are_weight_times_scaled_value() -> None:
    model = build_model("logreg")
    drive(model, list(toy_stream(800, seed=9)))
    x = {"amount": 120.0, "customer_avg_amount_30d": 50.0, "during_night": 1.0}
    scaler, lr = model.estimator.steps.values()  # type: ignore[attr-defined]
    z = scaler.transform_one(model.vector(x))
    for feature, _, contribution in model.explain(x, top=15):
        assert contribution == pytest.approx(lr.weights.get(feature, 0.0) * z[feature])


def test_shaped_linear_contributions_split_the_logit_exactly() -> None:
    model = build_model("logreg_steps")
    drive(model, list(toy_stream(800, seed=11)))
    x = {"amount": 260.0, "customer_amount_ratio_30d": 4.2, "terminal_risk_7d": 0.6}
    contributions = model.explain(x, top=len(model.features))
    assert {f for f, _, _ in contributions} <= set(model.features)  # steps fold into sources
    union, lr = model.estimator.steps.values()  # type: ignore[attr-defined]
    logit = math.log(model.predict_proba(x) / (1 - model.predict_proba(x)))
    assert sum(c for _, _, c in contributions) == pytest.approx(logit - lr.intercept, abs=1e-9)


def test_the_blend_scores_the_mean_of_its_members() -> None:
    examples = list(toy_stream(700, seed=12))
    blend, forest, linear = (build_model(k, seed=3) for k in ("arf_steps", "arf", "logreg_steps"))
    for b, f, li in zip(drive(blend, examples), drive(forest, examples), drive(linear, examples),
                        strict=True):
        assert b == pytest.approx((f + li) / 2, abs=1e-12)


def test_cold_start_is_a_safe_monotone_rule_and_round_trips() -> None:
    cold = ColdStartModel()
    assert cold.cold_start and cold.kind == "cold_start"
    scores = [cold.predict_proba({"amount": a}) for a in (0.0, 10.0, 220.0, 1000.0)]
    assert scores == sorted(scores) and scores[0] == 0.0 and scores[2] == 0.5
    cold.learn({"amount": 5.0}, True)
    assert cold.n_learned == 1 and cold.predict_proba({"amount": 220.0}) == 0.5
    assert cold.explain({"amount": 220.0}) == [("amount", 220.0, 0.5)]
    back = from_bytes(cold.to_bytes())
    assert isinstance(back, ColdStartModel) and back.n_learned == 1
    assert back.predict_proba({"amount": 77.0}) == cold.predict_proba({"amount": 77.0})
    with pytest.raises(ValueError):
        ColdStartModel(pivot=0)


def test_defaults_are_known_kinds_and_unknown_kinds_fail_clearly() -> None:
    assert DEFAULT_CHAMPION in KINDS and set(DEFAULT_CHALLENGERS) <= set(KINDS)
    assert DEFAULT_CHAMPION not in DEFAULT_CHALLENGERS
    assert isinstance(build_model("logreg"), FraudModel)
    with pytest.raises(UnknownModelKind):
        build_model("nope")


def test_bad_states_are_model_state_errors() -> None:
    good = build_model("logreg").to_bytes()
    header, payload = unpack(good)
    bad = [
        b"",
        b"not a model at all, clearly",
        good[:20],
        good.replace(b"VIGIEMDL", b"VIGIEXXX", 1),
        pack({**header, "kind": "gone"}, payload),
        pack({**header, "type": "alien"}, payload),
        pack({**header, "river": "0.0.1"}, payload),
        pack(header, b"garbage"),
    ]
    for data in bad:
        with pytest.raises(ModelStateError):
            from_bytes(data)
    assert header["river"] == RIVER_VERSION
