"""Pure logic of the inference service: decisions, scoring, pending transactions, labels,
learning, lifecycle and drift. No driver imports here."""
