"""Against the real stack: rows inserted, updated and deleted in PostgreSQL become the right
domain events on Kafka, the right mirror documents in MongoDB and PII-free Parquet in the lake."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import psycopg
import pyarrow.dataset as ds  # type: ignore[import-untyped]  # pyarrow ships no types
import pytest
from ingest_cdc_testkit import (
    Seen,
    Watcher,
    bootstrap,
    card_token,
    cdc_topics,
    commit_group_at_end,
    free_port,
    mirror_store,
    pseudonym,
    running_service,
    seed,
    settings,
)

from vigie_localstack.settings import StackSettings
from vigie_runtime.testing import eventually

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _is(event_type: str, **fields: Any) -> Any:
    def check(seen: Seen) -> bool:
        payload = seen.envelope.payload
        return seen.envelope.event_type == event_type and all(
            str(getattr(payload, k, None)) == str(v) for k, v in fields.items()
        )

    return check


@pytest.mark.parametrize("mode", ["bulk", "per_document"])
async def test_oltp_changes_become_events_mirrors_and_lake(
    stack: StackSettings, unique: str, tmp_path: Path, mode: str
) -> None:
    config = settings(stack, unique, tmp_path / "lake", http_port=free_port())
    config = config.model_copy(update={"mirror_write_mode": mode})
    await commit_group_at_end(bootstrap(stack), config.group_id, cdc_topics())
    watcher = Watcher(bootstrap(stack))
    await watcher.start()
    store = await mirror_store(stack, unique)
    try:
        async with (
            running_service(config),
            await psycopg.AsyncConnection.connect(stack.postgres_dsn(), autocommit=True) as conn,
        ):
            s = await seed(conn, unique)
            # 12.345 EUR: half-even to 1234 cents; 1500 JPY has no minor unit
            cur = await conn.execute(
                "INSERT INTO transactions (customer_id, card_id, terminal_id, merchant_id, "
                "amount, currency, channel, entry_mode, ip_address) VALUES "
                "(%s, %s, %s, %s, 12.345, 'EUR', 'pos', 'chip', '192.0.2.7'), "
                "(%s, %s, %s, %s, 1500, 'JPY', 'ecommerce', NULL, NULL) RETURNING id",
                (s.customer, s.card, s.terminal, s.merchant) * 2,
            )
            eur_tx, jpy_tx = [row[0] for row in await cur.fetchall()]
            await conn.execute(
                "UPDATE transactions SET status = 'authorized' WHERE id = %s", (eur_tx,)
            )
            await conn.execute("UPDATE transactions SET device_id = 'd-1' WHERE id = %s", (jpy_tx,))
            refund = await (
                await conn.execute(
                    "INSERT INTO refunds (transaction_id, amount, currency, reason) "
                    "VALUES (%s, 5.00, 'EUR', 'goodwill') RETURNING id",
                    (eur_tx,),
                )
            ).fetchone()
            dispute = await (
                await conn.execute(
                    "INSERT INTO disputes (transaction_id, reason_code, category, amount, "
                    "currency) VALUES (%s, '10.4', 'fraud', 12.34, 'EUR') RETURNING id",
                    (eur_tx,),
                )
            ).fetchone()
            assert refund is not None and dispute is not None
            await conn.execute(
                "UPDATE disputes SET status = 'won', resolved_at = now() WHERE id = %s",
                (dispute[0],),
            )
            await conn.execute(
                "UPDATE customers SET risk_segment = 'high' WHERE id = %s", (s.customer,)
            )
            doomed = await (
                await conn.execute(
                    "INSERT INTO merchants (name, mcc, country_code) VALUES (%s, '5812', 'FR') "
                    "RETURNING id",
                    (f"Doomed {unique}",),
                )
            ).fetchone()
            assert doomed is not None
            await conn.execute("DELETE FROM merchants WHERE id = %s", (doomed[0],))

            # -- domain events ----------------------------------------------------------------
            created = await watcher.wait_for(
                _is("transaction_created", transaction_id=eur_tx), timeout_s=60
            )
            tx = created[0].envelope.payload
            assert created[0].key == str(s.customer).encode()
            assert (tx.amount_minor, tx.currency, tx.status) == (1234, "EUR", "pending")
            assert tx.card_token == card_token(s.pan)
            assert (tx.card_bin, tx.card_last4) == (s.pan[:8], s.pan[-4:])
            assert tx.ip_pseudonym == pseudonym("ip", "192.0.2.7")
            assert tx.occurred_at.utcoffset() is not None
            jpy = (await watcher.wait_for(_is("transaction_created", transaction_id=jpy_tx)))[0]
            assert (jpy.envelope.payload.amount_minor, jpy.envelope.payload.currency) == (
                1500,
                "JPY",
            )
            moved = (await watcher.wait_for(_is("transaction_status_changed")))[0]
            assert moved.envelope.payload.transaction_id == str(eur_tx)
            assert (moved.envelope.payload.previous_status, moved.envelope.payload.status) == (
                "pending",
                "authorized",
            )
            refunded = (await watcher.wait_for(_is("refund_created", refund_id=refund[0])))[0]
            # keyed by the customer, found in the transactions mirror
            assert refunded.key == str(s.customer).encode()
            assert refunded.envelope.payload.customer_id == str(s.customer)
            assert refunded.envelope.payload.amount_minor == 500
            opened = (await watcher.wait_for(_is("dispute_opened", dispute_id=dispute[0])))[0]
            assert opened.envelope.payload.category == "fraud"
            resolved = (await watcher.wait_for(_is("dispute_resolved", dispute_id=dispute[0])))[0]
            assert resolved.envelope.payload.outcome == "won"
            customers = await watcher.wait_for(
                _is("customer_upserted", customer_id=s.customer), count=2
            )
            assert customers[-1].envelope.payload.risk_segment == "high"
            assert customers[-1].envelope.payload.email_pseudonym == pseudonym("email", s.email)
            cards = await watcher.wait_for(_is("card_upserted", card_id=s.card))
            assert cards[0].envelope.payload.card_token == card_token(s.pan)
            gone = await watcher.wait_for(_is("merchant_upserted", merchant_id=doomed[0]), count=2)
            assert [g.envelope.payload.deleted for g in gone] == [False, True]
            assert gone[0].key == str(doomed[0]).encode()
            # only a status move is a fact: the device_id update published nothing
            mine = watcher.matching(
                lambda seen: (
                    getattr(seen.envelope.payload, "transaction_id", None)
                    in (str(eur_tx), str(jpy_tx))
                    and seen.topic == "payments.transactions"
                )
            )
            assert sorted(m.envelope.event_type for m in mine) == [
                "transaction_created",
                "transaction_created",
                "transaction_status_changed",
            ]
            # no clear PAN or e-mail in any event of this test
            for seen in watcher.seen:
                text = seen.envelope.model_dump_json()
                assert s.pan not in text and s.email.lower() not in text.lower()

            # -- mirrors --------------------------------------------------------------------
            async def mirrored() -> bool:
                doc = await store.get("disputes", dispute[0])
                return doc is not None and doc["status"] == "won"

            await eventually(mirrored, timeout_s=30)
            doc = await store.get("transactions", eur_tx)
            assert doc is not None
            assert (doc["status"], doc["amount_minor"], doc["currency"]) == (
                "authorized",
                1234,
                "EUR",
            )
            assert doc["_version"] == moved.envelope.payload.source_lsn
            assert "ip_address" not in doc and doc["ip_address_pseudonym"]
            jpy_doc = await store.get("transactions", jpy_tx)
            assert jpy_doc is not None and jpy_doc["device_id"] == "d-1"
            card_doc = await store.get("cards", s.card)
            assert card_doc is not None and "pan" not in card_doc
            assert card_doc["card_token"] == card_token(s.pan)
            customer_doc = await store.get("customers", s.customer)
            assert customer_doc is not None and customer_doc["risk_segment"] == "high"
            assert "email" not in customer_doc and "full_name" not in customer_doc
            merchant_doc = await store.get("merchants", s.merchant)
            assert merchant_doc is not None and merchant_doc["country_code"] == "DE"
            assert await store.get("merchants", doomed[0]) is None
            tomb = await store.get("merchants", doomed[0], include_deleted=True)
            assert tomb is not None and tomb["_deleted"] is True

            # -- REST -----------------------------------------------------------------------
            base = f"http://127.0.0.1:{config.observability.http_port}"
            async with httpx.AsyncClient(base_url=base) as http:
                got = await http.get(f"/entities/transactions/{eur_tx}")
                assert got.status_code == 200
                assert got.json()["status"] == "authorized"
                assert (await http.get(f"/entities/merchants/{doomed[0]}")).status_code == 404
                assert (await http.get("/entities/nope/1")).status_code == 404
                status = (await http.get("/status")).json()
                assert status["events_published"]["transaction_created"] >= 2
                assert status["last_lsn"] >= doc["_version"]
                assert (await http.get("/health/ready")).status_code == 200
        # -- lake (files complete once the batch committed) ---------------------------------
        table = ds.dataset(str(tmp_path / "lake"), format="parquet", partitioning="hive").to_table()
        values = [v for v in table.column("value").to_pylist() if v is not None]
        assert any(str(eur_tx).encode() in v and b'"transactions"' in v for v in values)
        assert not any(s.pan.encode() in v or s.email.lower().encode() in v.lower() for v in values)
    finally:
        await watcher.stop()
        await store.drop_database()
        await store.close()
