"""vigie traffic generator."""
