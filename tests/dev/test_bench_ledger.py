"""The benchmark's ownership-ledger figure (gateway_dev.bench.ledger) and its cost rows, in a fast mode: a few
iterations against the test stack, so a change that breaks the measurement shows up in `make test`. Nothing here
checks how fast anything is: only what is counted (round trips) and that the numbers add up."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from gateway_dev.bench import cost
from gateway_dev.bench import ledger as bench_ledger
from mistral_gateway.container import current


def test_an_owned_read_and_a_create_each_cost_the_ledger_one_round_trip(gateway: Any, emulator: Any) -> None:
    # When the benchmark measures owned reads and creates on the warm test function
    figures = bench_ledger.measure(SimpleNamespace(nonce="t"), gateway.function, iterations=3, warmup=1)
    # Then every request made exactly one ledger call (a BatchGetItem to read, a PutItem to create)
    assert figures.read.round_trips == 1.0 and figures.create.round_trips == 1.0
    for measured in (figures.read, figures.create):
        assert len(measured.handler.samples) == len(measured.ledger.samples) == 3
        # ...whose time is part of the handler's
        pairs = zip(measured.ledger.samples, measured.handler.samples, strict=True)
        assert all(0 < spent <= whole for spent, whole in pairs)
        assert measured.log_bytes > 0
    # And the creates were real: the ledger holds the first upload and the three (plus warm-up) timed ones
    assert len(current().ledger.ids(bench_ledger.CALLER, "file")) == 1 + 1 + 3
    # And the ledger is no longer metered afterwards
    assert "_call" not in vars(current().ledger)


def test_owned_requests_are_priced_with_the_ledgers_capacity_units() -> None:
    read, create = cost.owned_costs(512, read_ms=10.0, create_ms=20.0, cold_ms=500.0, read_logs=900, create_logs=900)
    # A read is priced with one consistent read unit, a create with two write units (the table and its index)
    assert read.dynamodb == cost.LEDGER_READ_UNITS * cost.AWS_PRICES["dynamodb_per_read_unit"] * 1e6
    assert create.dynamodb == cost.LEDGER_WRITE_UNITS * cost.AWS_PRICES["dynamodb_per_write_unit"] * 1e6
    assert read.mistral == create.mistral == 0.0  # Mistral's own price for storing is not the gateway's
    assert create.lambda_compute > read.lambda_compute and read.total > read.api_gateway
