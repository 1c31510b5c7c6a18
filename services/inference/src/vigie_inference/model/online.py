"""A River estimator behind the :class:`~vigie_inference.model.base.FraudModel` interface."""

from __future__ import annotations

import pickle  # noqa: S403 - checkpoints are written by the service itself (see from_state)
from collections.abc import Callable, Hashable, Mapping
from importlib.metadata import version
from typing import Any, Protocol, runtime_checkable

from river import base, compose, forest, imblearn, tree

from .base import Explanation, ModelStateError, pack, top_contributions
from .transforms import source_feature

RIVER_VERSION = version("river")


@runtime_checkable
class OnlineClassifier(Protocol):
    """What a River classifier or pipeline offers (River's own base types do not cover both)."""

    def predict_proba_one(self, x: dict[Any, Any]) -> Mapping[Any, float]: ...

    def learn_one(self, x: dict[Any, Any], y: Any) -> None: ...


Explainer = Callable[[OnlineClassifier, dict[str, float]], dict[str, float]]


class MeanProba(base.Classifier):
    """The mean fraud probability of its members; each member learns every label it is given.

    Members learn exactly as they would alone, so with the same seeds the blend's score is the
    mean of the standalone models' scores.
    """

    def __init__(self, models: list[Any]) -> None:
        self.models = models

    def learn_one(self, x: dict[Any, Any], y: Any, **kwargs: Any) -> None:
        for m in self.models:
            m.learn_one(x, y)

    def predict_proba_one(self, x: dict[Any, Any], **kwargs: Any) -> dict[Any, float]:
        p = sum(float(m.predict_proba_one(x).get(True, 0.0)) for m in self.models)
        p /= max(len(self.models), 1)
        return {False: 1.0 - p, True: p}


def _unwrap(estimator: Any) -> Any:
    while isinstance(estimator, imblearn.random.ClassificationSampler):
        estimator = estimator.classifier
    return estimator


def explain_linear(estimator: Any, x: dict[str, float]) -> dict[str, float]:
    """weight x scaled value of each model input, summed per source feature (a shaped input such
    as ``amount>=250`` counts for ``amount``): an exact split of the logit minus the intercept.
    For a :class:`MeanProba` blend, the split of its linear member's logit (the forest's path
    credits are on another scale, so they are not mixed in)."""
    pipeline = _unwrap(estimator)
    if isinstance(pipeline, MeanProba):
        linear = [m for m in pipeline.models if isinstance(_unwrap(m), compose.Pipeline)]
        if not linear:
            raise TypeError("this blend has no linear member")
        pipeline = _unwrap(linear[0])
    if not isinstance(pipeline, compose.Pipeline):
        raise TypeError("explain_linear needs a scaler | LogisticRegression pipeline")
    *transforms, last = pipeline.steps.values()
    z = x
    for step in transforms:
        z = step.transform_one(z)
    weights = last.weights
    out: dict[str, float] = {}
    for k, v in z.items():
        source = source_feature(str(k))
        out[source] = out.get(source, 0.0) + float(weights.get(k, 0.0)) * float(v)
    return out


def _trees(estimator: Any) -> list[Any]:
    model = _unwrap(estimator)
    if isinstance(model, compose.Pipeline):
        model = _unwrap(list(model.steps.values())[-1])
    if isinstance(model, tree.HoeffdingTreeClassifier):
        return [model]
    if isinstance(model, forest.ARFClassifier):
        return list(model)
    raise TypeError(f"no path explainer for {type(model).__name__}")


def _fraud_share(stats: Mapping[Any, float]) -> float:
    total = sum(stats.values())
    return float(stats.get(True, 0.0)) / total if total > 0 else 0.0


def explain_paths(estimator: Any, x: dict[str, float]) -> dict[str, float]:
    """Saabas-style path attribution, averaged over the trees: along the path of ``x`` from the
    root to its leaf, each split credits its feature with the change in the share of fraud between
    the node and the child ``x`` goes to. River keeps a branch's class counts from the moment it
    split, and leaves may predict with naive Bayes, so the credits rank the features that route
    ``x`` towards fraud; they do not sum exactly to the score."""
    trees = _trees(estimator)
    contrib: dict[str, float] = {}
    for t in trees:
        root = getattr(t, "_root", None)
        if root is None:
            continue
        path = list(root.walk(x))
        for node, child in zip(path, path[1:], strict=False):
            feature = getattr(node, "feature", None)
            if feature is None:
                continue
            delta = _fraud_share(child.stats) - _fraud_share(node.stats)
            contrib[feature] = contrib.get(feature, 0.0) + delta
    n = max(len(trees), 1)
    return {k: v / n for k, v in contrib.items()}


class RiverModel:
    """A River classifier fed with a fixed feature order.

    Vectors are rebuilt in ``features`` order (missing features are 0.0, extra keys ignored), so a
    model's behaviour does not depend on how the caller's mapping happens to be ordered.
    """

    cold_start = False

    def __init__(
        self,
        kind: str,
        features: tuple[str, ...],
        estimator: OnlineClassifier,
        explainer: Explainer,
        *,
        seed: int = 0,
        name: str | None = None,
        n_learned: int = 0,
    ) -> None:
        self._kind = kind
        self._name = name or kind
        self.features = features
        self.estimator = estimator
        self._explainer = explainer
        self.seed = seed
        self._n_learned = n_learned

    @property
    def name(self) -> str:
        return self._name

    @property
    def kind(self) -> str:
        return self._kind

    @property
    def n_learned(self) -> int:
        return self._n_learned

    def vector(self, x: Mapping[str, float]) -> dict[str, float]:
        return {f: float(x.get(f, 0.0)) for f in self.features}

    def _river_x(self, x: Mapping[str, float]) -> dict[Hashable, Any]:
        v: dict[Hashable, Any] = {f: float(x.get(f, 0.0)) for f in self.features}
        return v

    def predict_proba(self, x: Mapping[str, float]) -> float:
        proba = self.estimator.predict_proba_one(self._river_x(x))
        return float(proba.get(True, 0.0))

    def learn(self, x: Mapping[str, float], fraud: bool) -> None:
        self.estimator.learn_one(self._river_x(x), bool(fraud))
        self._n_learned += 1

    def explain(self, x: Mapping[str, float], top: int = 5) -> Explanation:
        v = self.vector(x)
        return top_contributions(self.features, v, self._explainer(self.estimator, v), top)

    def to_bytes(self) -> bytes:
        return pack(*self.state())

    def state(self) -> tuple[dict[str, Any], bytes]:
        header = {
            "type": "river",
            "kind": self._kind,
            "name": self._name,
            "seed": self.seed,
            "n_learned": self._n_learned,
            "features": list(self.features),
            "river": RIVER_VERSION,
        }
        return header, pickle.dumps(self.estimator, protocol=pickle.HIGHEST_PROTOCOL)

    @classmethod
    def from_state(
        cls, header: Mapping[str, Any], payload: bytes, explainer: Explainer
    ) -> RiverModel:
        if header.get("river") != RIVER_VERSION:
            # A pickle of River objects is only guaranteed to mean the same in the same version.
            raise ModelStateError(
                f"model state from river {header.get('river')}, this is river {RIVER_VERSION}"
            )
        try:
            # Trusted input: the service reads back the checkpoints it wrote to its own GridFS.
            estimator = pickle.loads(payload)  # noqa: S301
        except Exception as exc:
            raise ModelStateError(f"model state payload does not unpickle: {exc}") from exc
        if not isinstance(estimator, OnlineClassifier):
            raise ModelStateError("model state payload is not a River classifier")
        return cls(
            str(header["kind"]),
            tuple(header["features"]),
            estimator,
            explainer,
            seed=int(header["seed"]),
            name=str(header["name"]),
            n_learned=int(header["n_learned"]),
        )

