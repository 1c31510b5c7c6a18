"""Fraud, security, model and pipeline-health alerts: rules, deduplication, routing to Kafka, MongoDB and webhooks, acknowledgement."""
