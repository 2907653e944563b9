"""`make bench`: cold start, per-request overhead, memory, layer size and cost of the gateway, each against a floor
measured in the same run (`python -m gateway_dev.bench`; docs/benchmarks.md says what each figure means).

Kept empty on purpose: the child programs in `children/` run as `python -m gateway_dev.bench.children.<name>`,
which imports this package before their first timed line.
"""
