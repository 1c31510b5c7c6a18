"""Helpers of the features tests and benchmark: a simulated stream, the worker, the topics."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from vigie_contracts import Envelope, Event
from vigie_contracts.events import FraudLabel, RefundCreated, SessionSummary, TransactionCreated
from vigie_contracts.events.fraud import LabelSource, LabelValue
from vigie_contracts.events.payments import Channel, TransactionStatus
from vigie_features.app import worker_wiring
from vigie_features.settings import FeaturesSettings
from vigie_localstack.settings import StackSettings
from vigie_runtime import KafkaSettings, ObservabilitySettings, Producer, run_service
from vigie_stores.redis import RedisConfig
from vigie_traffic.simulator import SimConfig, Simulator

PARTITIONS = 4
LABEL_DELAY = timedelta(days=7)


def bootstrap(stack: StackSettings) -> str:
    return f"{stack.host}:{stack.kafka_port}"


def redis_config(stack: StackSettings, unique: str) -> RedisConfig:
    return RedisConfig(
        url=f"redis://{stack.host}:{stack.redis_port}/0",  # type: ignore[arg-type]
        key_prefix=f"test-features-{unique}:",
    )


def settings(
    stack: StackSettings, unique: str, data_dir: Path, *, http_port: int = 0, **extra: Any
) -> FeaturesSettings:
    """A test worker: its own app id (group, changelogs), topics, Redis prefix and state dir;
    service name ``features`` so dead letters go to the provisioned ``dlq.features``."""
    return FeaturesSettings(
        kafka=KafkaSettings(bootstrap_servers=bootstrap(stack), session_timeout_ms=6_000),
        observability=ObservabilitySettings(
            service_name="features", http_host="127.0.0.1", http_port=http_port
        ),
        redis=redis_config(stack, unique),
        app_id=f"features-test-{unique}",
        transactions_topic=f"t-{unique}-transactions",
        refunds_topic=f"t-{unique}-refunds",
        labels_topic=f"t-{unique}-labels",
        sessions_topic=f"t-{unique}-sessions",
        customer_events_topic=f"t-{unique}-customer-events",
        merchant_events_topic=f"t-{unique}-merchant-events",
        partitions=PARTITIONS,
        data_dir=data_dir,
        commit_interval_s=0.2,
        **extra,
    )


def env_of(s: FeaturesSettings) -> dict[str, str]:
    """The same settings as environment variables, for a worker in a subprocess."""
    p = "VIGIE_FEATURES_"
    return {
        f"{p}KAFKA__BOOTSTRAP_SERVERS": s.kafka.bootstrap_servers,
        f"{p}KAFKA__SESSION_TIMEOUT_MS": str(s.kafka.session_timeout_ms),
        f"{p}OBSERVABILITY__SERVICE_NAME": s.observability.service_name,
        f"{p}OBSERVABILITY__HTTP_HOST": s.observability.http_host,
        f"{p}OBSERVABILITY__HTTP_PORT": str(s.observability.http_port),
        f"{p}OBSERVABILITY__LOG_LEVEL": "warning",
        f"{p}REDIS__URL": s.redis.url.get_secret_value(),
        f"{p}REDIS__KEY_PREFIX": s.redis.key_prefix,
        f"{p}APP_ID": s.app_id,
        f"{p}TRANSACTIONS_TOPIC": s.transactions_topic,
        f"{p}REFUNDS_TOPIC": s.refunds_topic,
        f"{p}LABELS_TOPIC": s.labels_topic,
        f"{p}SESSIONS_TOPIC": s.sessions_topic,
        f"{p}CUSTOMER_EVENTS_TOPIC": s.customer_events_topic,
        f"{p}MERCHANT_EVENTS_TOPIC": s.merchant_events_topic,
        f"{p}PARTITIONS": str(s.partitions),
        f"{p}DATA_DIR": str(s.data_dir),
        f"{p}COMMIT_INTERVAL_S": str(s.commit_interval_s),
        **({f"{p}GROUP_INSTANCE_ID": s.group_instance_id} if s.group_instance_id else {}),
    }


async def create_topics(s: FeaturesSettings) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=s.kafka.bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics(
            [
                NewTopic(s.transactions_topic, s.partitions, 1),
                NewTopic(s.refunds_topic, 3, 1),
                NewTopic(s.labels_topic, 3, 1),
                NewTopic(s.sessions_topic, 3, 1),
            ]
        )
    finally:
        await admin.close()


async def delete_topics(s: FeaturesSettings, unique: str) -> None:
    """The test's topics and the ones faust created (changelogs), by their unique part."""
    admin = AIOKafkaAdminClient(bootstrap_servers=s.kafka.bootstrap_servers)
    await admin.start()
    try:
        doomed = [t for t in await admin.list_topics() if unique in t]
        if doomed:
            await admin.delete_topics(doomed)
    finally:
        await admin.close()


@asynccontextmanager
async def worker_in_process(s: FeaturesSettings) -> AsyncIterator[asyncio.Event]:
    """The worker under ``run_service`` in this event loop; stopped gracefully on exit."""
    stop = asyncio.Event()
    failed: list[BaseException] = []
    task = asyncio.create_task(run_service(s, worker_wiring(stop, failed), stop=stop))
    try:
        yield stop
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)
    assert not failed, failed


def start_subprocess(s: FeaturesSettings, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, **env_of(s)}
    with log.open("ab") as out:
        return subprocess.Popen(  # noqa: S603 - our own entry point
            [sys.executable, "-m", "vigie_features", "worker"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


# -- the simulated stream ----------------------------------------------------------------------


@dataclass
class Stream:
    """Events of a simulated world, each with its topic, key and event time."""

    transactions: list[TransactionCreated] = field(default_factory=list)
    labels: list[FraudLabel] = field(default_factory=list)
    refunds: list[RefundCreated] = field(default_factory=list)
    sessions: list[SessionSummary] = field(default_factory=list)


def simulate(n_customers: int, n_terminals: int, nb_days: int, seed: int = 7) -> Stream:
    """Transactions of the handbook's simulator; fraud labels 7 days after each fraud; refunds
    and sessions of some transactions, none after a customer's last transaction (so each
    customer's latest event is a transaction, where the offline rows are)."""
    cfg = SimConfig(n_customers=n_customers, n_terminals=n_terminals, nb_days=nb_days, seed=seed)
    rng = np.random.default_rng(seed)
    out = Stream()
    frauds: list[TransactionCreated] = []
    for day in Simulator(cfg).days():
        for i in range(len(day)):
            customer = int(day.customer[i])
            tx_id = int(day.tx_id[i])
            roll = rng.random()
            card = None if roll < 0.1 else f"K{customer}-{int(roll * 10) % 2}"
            tx = TransactionCreated(
                transaction_id=f"tx{tx_id:08d}",
                customer_id=f"C{customer}",
                card_token=card,
                terminal_id=f"T{int(day.terminal[i])}",
                merchant_id=f"M{int(day.terminal[i]) // 4}",
                amount_minor=int(day.amount_cents[i]),
                currency="EUR",
                status=TransactionStatus.AUTHORIZED,
                channel=Channel.POS,
                occurred_at=cfg.start + timedelta(seconds=int(day.time_s[i])),
            )
            out.transactions.append(tx)
            if bool(day.fraud[i]):
                frauds.append(tx)
    last: dict[str, datetime] = {}
    for tx in out.transactions:
        last[tx.customer_id] = max(last.get(tx.customer_id, tx.occurred_at), tx.occurred_at)
    for n, tx in enumerate(out.transactions):
        roll = rng.random()
        if roll < 0.04:
            at = tx.occurred_at + timedelta(seconds=int(rng.integers(60, 2 * 86_400)))
            if at < last[tx.customer_id]:
                out.refunds.append(
                    RefundCreated(
                        refund_id=f"rf{n}",
                        transaction_id=tx.transaction_id,
                        customer_id=tx.customer_id,
                        amount_minor=max(tx.amount_minor, 1),
                        currency="EUR",
                        status="succeeded",
                        created_at=at,
                    )
                )
        elif roll < 0.14:
            end = tx.occurred_at - timedelta(seconds=int(rng.integers(30, 3_000)))
            out.sessions.append(
                SessionSummary(
                    session_id=f"s{n}",
                    user_id=tx.customer_id,
                    started_at=end - timedelta(minutes=5),
                    ended_at=end,
                    event_count=3,
                    page_views=2,
                    converted=False,
                    checkout_abandoned=False,
                    failed_logins=int(rng.integers(0, 3)),
                )
            )
        elif roll < 0.15:  # a genuine verdict: changes nothing
            out.labels.append(_label(tx, fraud=False))
    out.labels += [_label(tx, fraud=True) for tx in frauds]
    return out


def _label(tx: TransactionCreated, *, fraud: bool) -> FraudLabel:
    return FraudLabel(
        transaction_id=tx.transaction_id,
        customer_id=tx.customer_id,
        label=LabelValue.FRAUD if fraud else LabelValue.GENUINE,
        source=LabelSource.DISPUTE,
        labelled_at=tx.occurred_at + LABEL_DELAY,
    )


def event_time(event: Event) -> datetime:
    if isinstance(event, TransactionCreated):
        return event.occurred_at
    if isinstance(event, FraudLabel):
        return event.labelled_at
    if isinstance(event, RefundCreated):
        return event.created_at
    assert isinstance(event, SessionSummary)
    return event.ended_at


def ordered(stream: Stream, s: FeaturesSettings) -> list[tuple[str, str, Event]]:
    """(topic, key, event) of the whole stream in event-time order."""
    items: list[tuple[str, str, Event]] = []
    items += [(s.transactions_topic, t.customer_id, t) for t in stream.transactions]
    items += [(s.labels_topic, x.transaction_id, x) for x in stream.labels]
    items += [(s.refunds_topic, r.customer_id or "", r) for r in stream.refunds]
    items += [(s.sessions_topic, x.user_id, x) for x in stream.sessions]
    items.sort(key=lambda item: event_time(item[2]))
    return items


def chunks(
    items: Sequence[tuple[str, str, Event]], span: timedelta
) -> list[list[tuple[str, str, Event]]]:
    """The stream cut into consecutive event-time spans (produced one after the other, each
    once the worker caught up: a replay paced like the live stream, within the lateness)."""
    out: list[list[tuple[str, str, Event]]] = []
    start: datetime | None = None
    for item in items:
        at = event_time(item[2])
        if start is None or at - start >= span:
            out.append([])
            start = at
        out[-1].append(item)
    return out


async def produce(producer: Producer, items: Iterable[tuple[str, str, Event]]) -> int:
    futures = []
    for topic, key, event in items:
        envelope = Envelope.wrap(event, producer="tests", event_time=event_time(event))
        futures.append(producer.send(topic, envelope, key=key))
    await asyncio.gather(*futures)
    return len(futures)


async def wait_until(check: Any, timeout_s: float = 60.0, every_s: float = 0.1) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s")
        await asyncio.sleep(every_s)


# -- catching up, and the offline check ---------------------------------------------------------


async def behind(s: FeaturesSettings) -> dict[str, str]:
    """What the worker's group has not committed yet, by partition ("committed/end"), of the
    source and internal topics (an offset is committed only once its event's hashes are in
    Redis); ``{"topics": "missing"}`` before the internal topics exist."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    topics = [
        s.transactions_topic,
        s.refunds_topic,
        s.labels_topic,
        s.sessions_topic,
        s.customer_events_topic,
        s.merchant_events_topic,
    ]
    missing = {"topics": "missing"}
    consumer = AIOKafkaConsumer(bootstrap_servers=s.kafka.bootstrap_servers)
    admin = AIOKafkaAdminClient(bootstrap_servers=s.kafka.bootstrap_servers)
    await consumer.start()
    await admin.start()
    try:
        # describing a missing topic would auto-create it with the broker's default partitions
        if not set(topics) <= set(await admin.list_topics()):
            return missing
        described = await admin.describe_topics(topics)
        tps = [
            TopicPartition(d["topic"], p["partition"]) for d in described for p in d["partitions"]
        ]
        if len({tp.topic for tp in tps}) != len(topics):
            return missing  # the internal topics are not created yet
        ends = await consumer.end_offsets(tps)
        committed = await admin.list_consumer_group_offsets(s.app_id)
    finally:
        await consumer.stop()
        await admin.close()
    out: dict[str, str] = {}
    for tp in tps:
        meta = committed.get(tp)
        done = meta.offset if meta is not None else 0
        if done < ends[tp]:
            out[f"{tp.topic}:{tp.partition}"] = f"{done}/{ends[tp]}"
    return out


async def caught_up(s: FeaturesSettings) -> bool:
    """Everything on the source and internal topics is committed by the worker's group."""
    return not await behind(s)


async def wait_caught_up(
    s: FeaturesSettings, timeout_s: float, *, http: httpx.AsyncClient, log: Path
) -> None:
    """``wait_until(caught_up)``, failing with where the worker stands: what is not committed,
    its ``/status`` (partitions, table recovery) and the end of its log."""
    try:
        await wait_until(lambda: caught_up(s), timeout_s=timeout_s)
    except AssertionError as exc:
        try:
            status: Any = (await http.get("/status")).json()
        except httpx.HTTPError as error:
            status = repr(error)
        text = await asyncio.to_thread(log.read_text, errors="replace")
        tail = text.splitlines()[-30:]
        raise AssertionError(
            f"{exc}; not committed: {await behind(s)}; status: {status}; log tail:\n"
            + "\n".join(tail)
        ) from None


def _frame(rows: list[dict[str, Any]], columns: list[str]) -> Any:
    import pandas as pd  # type: ignore[import-untyped]  # no pandas-stubs in the workspace

    return pd.DataFrame(rows, columns=columns)


@dataclass
class Expected:
    """Per stored entity, its feature values recomputed offline at its last event."""

    values: dict[tuple[str, str], dict[str, float]]
    as_of: dict[tuple[str, str], datetime]


def expected(stream: Stream) -> Expected:
    """compute_offline() at each entity's last event: a customer's or card's last transaction
    (the simulated stream puts no refund or session after it); for a terminal or merchant, whose
    last event is often a fraud label, a probe transaction at that time (on a customer, card and
    merchant/terminal of its own, so it changes no other entity's rows)."""
    from vigie_featureset import FEATURES, VIEW_REQUEST, compute_offline

    def key(tx: TransactionCreated) -> tuple[datetime, str]:
        return tx.occurred_at, tx.transaction_id

    last_tx: dict[tuple[str, str], TransactionCreated] = {}
    for tx in sorted(stream.transactions, key=key):
        last_tx[("customer", tx.customer_id)] = tx
        if tx.card_token:
            last_tx[("card", tx.card_token)] = tx
    by_id = {tx.transaction_id: tx for tx in stream.transactions}
    last_risk: dict[tuple[str, str], datetime] = {}
    for tx in stream.transactions:
        for k in (("terminal", tx.terminal_id), ("merchant", tx.merchant_id)):
            last_risk[k] = max(last_risk.get(k, tx.occurred_at), tx.occurred_at)
    for label in stream.labels:
        if label.label is not LabelValue.FRAUD:
            continue
        tx = by_id[label.transaction_id]
        for k in (("terminal", tx.terminal_id), ("merchant", tx.merchant_id)):
            last_risk[k] = max(last_risk[k], label.labelled_at)
    tx_rows = [
        {
            "transaction_id": tx.transaction_id,
            "customer_id": tx.customer_id,
            "card_token": tx.card_token,
            "terminal_id": tx.terminal_id,
            "merchant_id": tx.merchant_id,
            "amount_minor": tx.amount_minor,
            "occurred_at": tx.occurred_at,
        }
        for tx in stream.transactions
    ]
    # An entity whose last event is a transaction is checked on that transaction's row. A probe
    # never shares its time with a real transaction: compute_offline misaligned rows when many
    # probes tied with real transactions (reported to libs/featureset).
    tx_times = {tx.occurred_at for tx in stream.transactions}
    last_of: dict[tuple[str, str], TransactionCreated] = {}
    for tx in sorted(stream.transactions, key=key):
        last_of[("terminal", tx.terminal_id)] = tx
        last_of[("merchant", tx.merchant_id)] = tx
    probes: dict[tuple[str, str], str] = {}
    for (kind, entity_id), at in sorted(last_risk.items()):
        if last_of[(kind, entity_id)].occurred_at == at:
            last_tx[(kind, entity_id)] = last_of[(kind, entity_id)]
            continue
        if at in tx_times:
            continue
        probe = f"probe-{kind}-{entity_id}"
        probes[(kind, entity_id)] = probe
        tx_rows.append(
            {
                "transaction_id": probe,
                "customer_id": f"{probe}-customer",
                "card_token": None,
                "terminal_id": entity_id if kind == "terminal" else f"{probe}-terminal",
                "merchant_id": entity_id if kind == "merchant" else f"{probe}-merchant",
                "amount_minor": 100,
                "occurred_at": at,
            }
        )
    tx_cols = list(tx_rows[0])
    labels = _frame(
        [
            {
                "transaction_id": x.transaction_id,
                "fraud": x.label is LabelValue.FRAUD,
                "labelled_at": x.labelled_at,
            }
            for x in stream.labels
        ],
        ["transaction_id", "fraud", "labelled_at"],
    )
    refunds = _frame(
        [
            {"refund_id": r.refund_id, "customer_id": r.customer_id, "created_at": r.created_at}
            for r in stream.refunds
        ],
        ["refund_id", "customer_id", "created_at"],
    )
    sessions = _frame(
        [
            {
                "session_id": x.session_id,
                "customer_id": x.user_id,
                "ended_at": x.ended_at,
                "failed_logins": x.failed_logins,
            }
            for x in stream.sessions
        ],
        ["session_id", "customer_id", "ended_at", "failed_logins"],
    )
    # Terminal and merchant probes go in separate runs: with both at once compute_offline
    # returned zeros for some merchants (reported to libs/featureset; each run alone agrees
    # with a brute-force count).
    n_real = len(stream.transactions)
    terminal_rows = [r for r in tx_rows[n_real:] if r["terminal_id"] in {k[1] for k in probes}]
    merchant_rows = [r for r in tx_rows[n_real:] if r not in terminal_rows]
    offline_t = compute_offline(
        _frame(tx_rows[:n_real] + terminal_rows, tx_cols), labels, refunds, sessions
    )
    offline_m = compute_offline(_frame(tx_rows[:n_real] + merchant_rows, tx_cols), labels)
    stored = {
        kind: [f.name for f in FEATURES if f.entity.value == kind and f.view != VIEW_REQUEST]
        for kind in ("customer", "card", "terminal", "merchant")
    }
    values: dict[tuple[str, str], dict[str, float]] = {}
    as_of: dict[tuple[str, str], datetime] = {}
    for k, tx in last_tx.items():
        row = offline_t.loc[tx.transaction_id]
        values[k] = {name: float(row[name]) for name in stored[k[0]]}
        as_of[k] = tx.occurred_at
    for k, probe in probes.items():
        row = (offline_t if k[0] == "terminal" else offline_m).loc[probe]
        values[k] = {name: float(row[name]) for name in stored[k[0]]}
        as_of[k] = last_risk[k]
    return Expected(values, as_of)


async def mismatches(store: Any, want: Expected) -> list[str]:
    """Every difference between Redis and the offline values (empty: equal)."""
    import math

    from vigie_contracts.events.features import EntityType
    from vigie_featureset import decode_fields, entity_key

    keys = {k: entity_key(EntityType(k[0]), k[1]) for k in want.values}
    found = await store.read_hashes(list(keys.values()))
    problems: list[str] = []
    for k, redis_key in keys.items():
        fields = found.get(redis_key)
        if fields is None:
            problems.append(f"{k}: no hash")
            continue
        entity = decode_fields(fields)
        if entity.as_of != want.as_of[k]:
            problems.append(f"{k}: as_of {entity.as_of} != {want.as_of[k]}")
        flat = {name: v for view in entity.views.values() for name, v in view.items()}
        for name, value in want.values[k].items():
            got = flat.get(name)
            if got is None or not math.isclose(got, value, rel_tol=1e-9, abs_tol=1e-9):
                problems.append(f"{k}: {name} = {got}, offline {value}")
    return problems
