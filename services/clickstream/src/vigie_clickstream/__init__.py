"""vigie clickstream service."""
