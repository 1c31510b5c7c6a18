"""The live view of a running vigie platform."""
