"""Event-time windowed features of customers, cards, merchants and terminals into the Redis
online store (a faust-streaming worker), with a REST lookup (a separate process)."""
