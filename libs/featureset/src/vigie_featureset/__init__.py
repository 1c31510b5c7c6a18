"""Feature definitions shared by features and inference: the registry, entity window state, point-in-time vector completion, the Redis layout, and the offline reference recomputation."""
