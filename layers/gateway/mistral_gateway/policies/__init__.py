"""What the gateway decides about a request besides its meaning: the answer cache (memory, then the table),
single-flight, budgets and their token bounds, per-key model lists, spend per key, circuit breakers."""
