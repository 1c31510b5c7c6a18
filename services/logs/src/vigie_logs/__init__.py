"""vigie logs: raw log records → parsed, redacted, classified; Cassandra, the lake's raw zone
and security events on ``logs.security``; a query API by service, trace and error fingerprint."""
