"""Event-time windowed features of customers, cards, merchants, terminals and devices into the Redis online store (faust-streaming), with a REST lookup."""
