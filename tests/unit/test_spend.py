"""Spend per key (mistral_gateway/policies/spend.py): what one served line adds, and a failing table never fails a
request."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from mistral_gateway.platform.economics import LIST_PRICES, Prices
from mistral_gateway.policies import spend

ROOT = Path(__file__).resolve().parents[2]
PRICES = Prices(LIST_PRICES)  # the list prices, as a container without ModelPrices has them
SMALL = "mistral-small-latest"  # $0.10 / $0.30 per million tokens


def test_a_miss_adds_its_billed_tokens_and_their_cost() -> None:
    line = {
        "caller": "k1",
        "status": 200,
        "model": SMALL,
        "cache": "MISS",
        "prompt_tokens": 1000,
        "completion_tokens": 2000,
    }
    assert spend.counters(line, PRICES) == {
        "requests": 1,
        "prompt_tokens": 1000,
        "completion_tokens": 2000,
        "cost_nusd": 700_000,
    }
    assert spend.line_fields(line, PRICES) == {"cost_usd": 0.0007}


def test_a_hit_adds_what_it_saved_and_costs_nothing() -> None:
    line = {"caller": "k1", "status": 200, "model": SMALL, "cache": "HIT", "tokens_from_cache": 3000,
            "prompt_tokens_from_cache": 1000, "completion_tokens_from_cache": 2000}  # fmt: skip
    assert spend.counters(line, PRICES) == {"requests": 1, "cache_hits": 1, "saved_tokens": 3000, "saved_nusd": 700_000}
    assert spend.line_fields(line, PRICES) == {"saved_usd": 0.0007}


def test_a_fallback_is_priced_at_the_model_that_answered_and_counted() -> None:
    line = {"caller": "k1", "status": 200, "model": "mistral-large-latest", "served_by": SMALL,
            "fallback_from": "mistral-large-latest", "prompt_tokens": 1000, "completion_tokens": 0}  # fmt: skip
    assert spend.counters(line, PRICES)["cost_nusd"] == 100_000 and spend.counters(line, PRICES)["fallbacks"] == 1


def test_refusals_count_as_errors_and_429s_apart() -> None:
    assert spend.counters({"caller": "k", "status": 429}, PRICES) == {"requests": 1, "errors": 1, "rate_limited": 1}
    assert spend.counters({"caller": "k", "status": 403, "model": "x"}, PRICES) == {"requests": 1, "errors": 1}


class FailingTable:
    def update_item(self, **_: Any) -> None:
        from botocore.exceptions import ClientError

        raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "x"}}, "UpdateItem")


class RecordingTable:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def update_item(self, **arguments: Any) -> None:
        self.calls.append(arguments)


def test_a_failing_table_is_a_warning_not_a_failure(caplog: pytest.LogCaptureFixture) -> None:
    spend.record({"caller": "k1", "status": 200, "model": SMALL}, PRICES, table="t", dynamodb=FailingTable)
    assert [record.getMessage() for record in caplog.records] == ["spend not recorded"]


def test_one_atomic_add_per_key_day_and_model_and_nothing_without_a_caller() -> None:
    table = RecordingTable()
    spend.record({"caller": "k1", "status": 200, "model": SMALL, "prompt_tokens": 3}, PRICES, table="t",
                 dynamodb=lambda: table, now=86_400 * 20_000 + 5)  # fmt: skip
    spend.record({"caller": None, "status": 200, "model": SMALL}, PRICES, table="t", dynamodb=lambda: table)
    (call,) = table.calls
    assert call["Key"] == {"pk": {"S": "spend#k1#2024-10-04#mistral-small-latest"}}
    assert call["UpdateExpression"].startswith("ADD ") and "ConditionExpression" not in call


def test_the_documented_cost_per_million_requests_is_one_write_unit_at_the_price_the_bench_uses() -> None:
    from gateway_dev.bench.cost import AWS_PRICES

    figure = f"${AWS_PRICES['dynamodb_per_write_unit'] * 1e6:.3f} per million requests"
    readme = (ROOT / "README.md").read_text()
    assert figure in readme and re.search(r"one DynamoDB write unit per request", readme)


def test_a_batch_adds_each_item_at_its_model_and_counts_one_request() -> None:
    # Given a batch whose items were a miss at small, a hit at large and a refused item
    items = [
        {"status": 200, "model": SMALL, "cache": "MISS", "prompt_tokens": 1000, "completion_tokens": 2000},
        {"status": 200, "model": "mistral-large-latest", "cache": "HIT", "tokens_from_cache": 30,
         "prompt_tokens_from_cache": 10, "completion_tokens_from_cache": 20, "single_flight": "ignored"},
        {"status": 422},
    ]  # fmt: skip
    line = {"caller": "k1", "status": 200, "cache": "BATCH", **spend.batch_fields(items)}
    # Then its line carries the sums, and each item's spend fields only
    assert line["prompt_tokens"] == 1000 and line["completion_tokens"] == 2000 and line["tokens_from_cache"] == 30
    assert all("single_flight" not in item for item in line["batch_usage"])
    # And it adds one request (no model), and each item's tokens, cost and savings at the item's model
    table = RecordingTable()
    spend.record(line, PRICES, table="t", dynamodb=lambda: table, now=86_400 * 20_000)
    added = {
        call["Key"]["pk"]["S"].rsplit("#", 1)[1]: {
            call["ExpressionAttributeNames"][name.replace(":", "#")]: int(value["N"])
            for name, value in call["ExpressionAttributeValues"].items()
            if name.startswith(":c")
        }
        for call in table.calls
    }
    assert added == {
        "-": {"requests": 1},
        SMALL: {"prompt_tokens": 1000, "completion_tokens": 2000, "cost_nusd": 700_000},
        "mistral-large-latest": {"cache_hits": 1, "saved_tokens": 30, "saved_nusd": 35_000},
    }
    assert spend.line_fields(line, PRICES) == {"cost_usd": 0.0007, "saved_usd": 3.5e-05}
