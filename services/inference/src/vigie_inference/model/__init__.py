"""Fraud models: River pipelines behind one small interface, their checkpoints, and a cold start.

``build_model(kind, seed=...)`` gives a fresh model of a kind from :data:`KINDS`;
:func:`from_bytes` restores any model from :meth:`FraudModel.to_bytes`. See ``kinds.py`` for what
each kind is and what it measured on the handbook's weeks.
"""

from .base import (
    Explanation,
    FraudModel,
    ModelError,
    ModelStateError,
    UnknownModelKind,
)
from .cold_start import ColdStartModel
from .kinds import (
    DEFAULT_CHALLENGERS,
    DEFAULT_CHAMPION,
    KINDS,
    ModelKind,
    build_model,
    from_bytes,
)
from .online import RiverModel

__all__ = [
    "DEFAULT_CHALLENGERS",
    "DEFAULT_CHAMPION",
    "KINDS",
    "ColdStartModel",
    "Explanation",
    "FraudModel",
    "ModelError",
    "ModelKind",
    "ModelStateError",
    "RiverModel",
    "UnknownModelKind",
    "build_model",
    "from_bytes",
]
