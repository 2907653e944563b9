"""What every wing stands on: settings read from the environment, observability (Logger, Metrics, Tracer),
the gateway's errors, prices and costs, AWS error reading, and a request's deadline."""
