"""I/O of the inference service: Redis features, the Cassandra prediction log, MongoDB
``fraud_events`` and the model registry (GridFS)."""
