"""vigie_runtime: being built (issue 4)."""
