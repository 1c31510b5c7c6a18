"""The interface the service scores and learns through, and the checkpoint byte format."""

from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import orjson

MAGIC = b"VIGIEMDL"
FORMAT_VERSION = 1
_HEADER = struct.Struct(">8sHI")  # magic, format version, length of the JSON header


class ModelError(Exception):
    """Root of the model package's errors."""


class ModelStateError(ModelError):
    """Checkpoint bytes that cannot be restored (corrupt, foreign, or from another River)."""


class UnknownModelKind(ModelError, KeyError):
    """``build_model`` was asked for a kind it does not know."""


Explanation = list[tuple[str, float, float]]
"""(feature, value, contribution) triples, largest absolute contribution first."""


@runtime_checkable
class FraudModel(Protocol):
    """What the service needs from a model.

    ``predict_proba`` is the fraud probability of a feature vector; ``learn`` one label;
    ``explain`` the features that weigh most on that score. ``to_bytes`` is the whole state:
    :func:`vigie_inference.model.from_bytes` gives back a model that predicts and learns exactly
    as this one would. A model is deterministic given its seed and the order of its calls.
    """

    @property
    def name(self) -> str: ...

    @property
    def kind(self) -> str: ...

    @property
    def cold_start(self) -> bool: ...

    @property
    def n_learned(self) -> int: ...

    def predict_proba(self, x: Mapping[str, float]) -> float: ...

    def learn(self, x: Mapping[str, float], fraud: bool) -> None: ...

    def explain(self, x: Mapping[str, float], top: int = 5) -> Explanation: ...

    def to_bytes(self) -> bytes: ...


def pack(header: Mapping[str, Any], payload: bytes) -> bytes:
    head = orjson.dumps(dict(header), option=orjson.OPT_SORT_KEYS)
    return _HEADER.pack(MAGIC, FORMAT_VERSION, len(head)) + head + payload


def unpack(data: bytes) -> tuple[dict[str, Any], bytes]:
    if len(data) < _HEADER.size:
        raise ModelStateError("model state too short")
    magic, version, size = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise ModelStateError("not a vigie model state (bad magic)")
    if version != FORMAT_VERSION:
        raise ModelStateError(f"model state format {version} is not {FORMAT_VERSION}")
    end = _HEADER.size + size
    if len(data) < end:
        raise ModelStateError("model state truncated in its header")
    try:
        header = orjson.loads(data[_HEADER.size : end])
    except orjson.JSONDecodeError as exc:
        raise ModelStateError("model state header is not JSON") from exc
    if not isinstance(header, dict):
        raise ModelStateError("model state header is not an object")
    return header, data[end:]


def top_contributions(
    names: tuple[str, ...], x: Mapping[str, float], contrib: Mapping[str, float], top: int
) -> Explanation:
    ranked = sorted(names, key=lambda n: (-abs(contrib.get(n, 0.0)), n))
    return [(n, float(x.get(n, 0.0)), float(contrib.get(n, 0.0))) for n in ranked[:top]]
