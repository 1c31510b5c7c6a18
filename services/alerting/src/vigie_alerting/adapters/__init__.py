"""I/O of the alerting service: MongoDB history and outbox, webhooks, Kafka consumer lag."""
