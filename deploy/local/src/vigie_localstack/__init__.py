"""vigie's local stack: real Kafka, Connect + Debezium, PostgreSQL, Cassandra, FerretDB, Redis.

Everything is installed from package registries into one project-local folder (``.vigie/`` at the
repository root, or ``$VIGIE_HOME``) and run under supervisord.
"""
