"""Programs the benchmark runs in fresh processes (`python -m gateway_dev.bench.children.<name>`).

Each imports only the standard library before its first timed line, so a cold start measures the handler."""
