"""I/O: Cassandra tables, the lake's raw zone, the security-events topic."""
