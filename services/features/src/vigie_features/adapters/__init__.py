"""I/O of the features service: the Redis online store writer."""
