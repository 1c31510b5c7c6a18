"""I/O: the domain topics, the MongoDB mirrors and the lake's raw zone."""

from .events import EventPublisher
from .lake import RawZone
from .mirrors import Mirrors

__all__ = ["EventPublisher", "Mirrors", "RawZone"]
