"""vigie_stores: being built (issue 4)."""
