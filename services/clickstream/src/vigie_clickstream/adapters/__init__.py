"""I/O of the clickstream: Avro on the wire, enrichment databases, Cassandra, Redis."""
