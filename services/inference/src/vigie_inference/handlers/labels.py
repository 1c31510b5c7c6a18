"""Labels, pure: which dispute events are fraud labels, and which scored transactions the
label-delay sweep declares genuine.

A fraud dispute (``dispute_opened`` with category fraud) labels its transaction fraud when it
is opened; a fraud dispute resolved against the merchant (lost / accepted) is a chargeback and
labels it fraud as well (the learner learns each (transaction, label) once, so both arriving
costs nothing). A transaction with no fraud label when its deadline (occurred_at + label delay +
grace, in event time) has passed is labelled genuine. Event time is the scorer's: the latest
``occurred_at`` it has scored, so a replay at any speed sweeps the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from vigie_contracts import Envelope
from vigie_contracts.events.fraud import FraudLabel, LabelSource, LabelValue
from vigie_contracts.events.payments import (
    DisputeCategory,
    DisputeOpened,
    DisputeOutcome,
    DisputeResolved,
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def fraud_label(event: object, customer_id: str | None = None) -> FraudLabel | None:
    """The fraud label a dispute event carries, or None (not about fraud, or not lost)."""
    if isinstance(event, DisputeOpened) and event.category == DisputeCategory.FRAUD:
        return FraudLabel(
            transaction_id=event.transaction_id,
            customer_id=event.customer_id or customer_id,
            label=LabelValue.FRAUD,
            source=LabelSource.DISPUTE,
            labelled_at=event.opened_at,
        )
    if (
        isinstance(event, DisputeResolved)
        and event.category == DisputeCategory.FRAUD
        and event.outcome in (DisputeOutcome.LOST, DisputeOutcome.ACCEPTED)
    ):
        return FraudLabel(
            transaction_id=event.transaction_id,
            customer_id=customer_id,
            label=LabelValue.FRAUD,
            source=LabelSource.CHARGEBACK,
            labelled_at=event.resolved_at,
        )
    return None


def genuine_label(transaction_id: str, customer_id: str, labelled_at: datetime) -> FraudLabel:
    return FraudLabel(
        transaction_id=transaction_id,
        customer_id=customer_id,
        label=LabelValue.GENUINE,
        source=LabelSource.LABEL_DELAY_EXPIRED,
        labelled_at=labelled_at,
    )


def label_envelope(label: FraudLabel, *, producer: str) -> Envelope[FraudLabel]:
    """The id names the fact (transaction, label, source): a re-sent label is recognisable."""
    return Envelope.wrap(
        label,
        producer=producer,
        event_time=label.labelled_at,
        event_id=f"{label.transaction_id}:{label.label.value}:{label.source.value}",
    )


def bucket_of(moment: datetime, width: timedelta) -> datetime:
    """The start of the event-time bucket holding ``moment``."""
    step = int(width.total_seconds())
    seconds = int((moment.astimezone(UTC) - _EPOCH).total_seconds())
    return _EPOCH + timedelta(seconds=seconds - seconds % step)


@dataclass(frozen=True, slots=True)
class SweepPlan:
    """Buckets whose every transaction is past its deadline, oldest first."""

    buckets: tuple[datetime, ...]
    #: what to remember as swept up to (exclusive) once they are done
    swept_until: datetime | None


def plan_sweep(
    clock: datetime | None,
    swept_until: datetime | None,
    first_bucket: datetime | None,
    *,
    width: timedelta,
    deadline: timedelta,
    most: int = 1000,
) -> SweepPlan:
    """A bucket [b, b + width) is due when ``clock >= b + width + deadline``: then its newest
    possible transaction is past the deadline as well."""
    if clock is None:
        return SweepPlan((), swept_until)
    start = swept_until if swept_until is not None else first_bucket
    if start is None:
        return SweepPlan((), swept_until)
    due: list[datetime] = []
    bucket = bucket_of(start, width)
    while bucket + width + deadline <= clock and len(due) < most:
        due.append(bucket)
        bucket += width
    return SweepPlan(tuple(due), bucket if due else swept_until)


def genuine_due(
    rows: Iterable[tuple[str, str, datetime, bool]], *, deadline: timedelta
) -> Iterator[FraudLabel]:
    """For rows (transaction, customer, occurred_at, has fraud label) of due buckets."""
    for transaction_id, customer_id, occurred_at, fraud in rows:
        if not fraud:
            yield genuine_label(transaction_id, customer_id, occurred_at + deadline)
