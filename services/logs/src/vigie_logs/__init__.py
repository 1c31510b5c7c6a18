"""vigie logs service: being built."""
