"""vigie ingest-cdc: OLTP change events (Debezium) → payments domain events, MongoDB mirrors and
the lake's raw zone, with card numbers and personal data replaced on the way in."""
