"""Dev-only tools around the gateway, top to bottom (tests/test_layout.py holds the order):

- `ops/`, `bench/`: what a person runs: the operator's CLI (keys, budgets, spend, checks of a build and of a
  deployed stack, the OpenAPI export), and the benchmark;
- `runner/`: `make serve` without Docker: the template's functions run in this process behind a local API;
- `cloud/` and `emulator/`: what the runner stands in for: AWS around the functions (the template read, API
  Gateway's events, limits and usage plans, moto's tables), and Mistral's API (a deterministic emulator).

A part imports only from parts below it, never from a sibling on its own row.
"""
