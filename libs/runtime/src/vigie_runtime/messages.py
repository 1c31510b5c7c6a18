"""What a handler receives: decoded records with where they came from and their trace context."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from opentelemetry.context import Context

from vigie_contracts import DecodeError, Envelope, Event, decode

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


@dataclass(frozen=True, slots=True)
class Message(Generic[T]):
    topic: str
    partition: int
    offset: int
    #: the broker's timestamp (ms since epoch): when Kafka appended it, not when it happened
    timestamp: int
    key: bytes | None
    #: the bytes as they were on the topic (dead letters keep them verbatim)
    raw: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    value: T
    #: the context of this message's consumer span: pass it to ``Producer.send`` so events
    #: derived from this one continue its trace
    context: Context = field(default_factory=Context, compare=False)

    @property
    def position(self) -> str:
        return f"{self.topic}:{self.partition}:{self.offset}"

    def header(self, name: str) -> bytes | None:
        return next((value for key, value in self.headers if key == name), None)


def from_record(record: Any, value: T, context: Context | None = None) -> Message[T]:
    """Wrap an aiokafka ``ConsumerRecord`` (untyped in aiokafka)."""
    return Message(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        timestamp=record.timestamp,
        key=record.key,
        raw=record.value,
        headers=tuple(record.headers or ()),
        value=value,
        context=context if context is not None else Context(),
    )


class Decoder(Protocol[T_co]):
    """Turns a record's value into what the handler gets.

    Bad input is signalled by raising ``vigie_contracts.DecodeError`` / ``ValidationError``,
    ``vigie_runtime.Poison`` or ``ValueError`` (``json`` and pydantic errors are ValueErrors):
    the record goes to the dead-letter topic. Anything else is a bug and stops the loop.
    """

    def __call__(self, value: bytes | None, /) -> T_co: ...


def envelope_decoder(value: bytes | None) -> Envelope[Event]:
    """The default: a vigie Avro envelope, validated against its contract."""
    if value is None:
        raise DecodeError("tombstone (null value) on a topic of vigie events")
    return decode(value)


def raw_decoder(value: bytes | None) -> bytes | None:
    """The bytes as they are (logs, Debezium JSON parsed by the handler, benchmarks)."""
    return value
