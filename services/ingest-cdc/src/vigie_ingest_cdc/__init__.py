"""vigie ingest-cdc service: being built."""
