"""Spend per key (policies/spend.py): what one served line adds, once delivered (policies/spend_batches.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mistral_gateway.platform.economics import LIST_PRICES, Prices
from mistral_gateway.policies import spend, spend_batches

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


class RecordingTable:
    """A quota table that records each delivery's transaction (its marker Put and its ADD updates)."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def transact_write_items(self, TransactItems: list[dict[str, Any]]) -> None:
        self.calls.extend(action["Update"] for action in TransactItems if "Update" in action)


def record(line: dict[str, Any], table: RecordingTable, now: float) -> None:
    """One served line, delivered as CloudWatch Logs delivers it to the spend function."""
    event = {"id": f"e{len(table.calls)}-{now}", "timestamp": int(now * 1000), "message": json.dumps(line)}
    payload = {"messageType": "DATA_MESSAGE", "logGroup": "g", "logStream": "s", "logEvents": [event]}
    spend_batches.apply(payload, PRICES, table="t", dynamodb=table, now=now)


def test_the_request_path_writes_no_spend_itself() -> None:
    # The served line is the record (spend_batches.py); the request functions only write it.
    assert not hasattr(spend, "record_served") and not hasattr(spend, "record")


def test_one_atomic_add_per_key_day_and_model_and_nothing_without_a_caller() -> None:
    table = RecordingTable()
    record({"message": "request served", "caller": "k1", "status": 200, "model": SMALL, "prompt_tokens": 3},
           table, now=86_400 * 20_000 + 5)  # fmt: skip
    record({"message": "request served", "caller": None, "status": 200, "model": SMALL}, table, now=86_400 * 20_000)
    (call,) = table.calls
    assert call["Key"] == {"pk": {"S": "spend#k1#2024-10-04#mistral-small-latest"}}
    assert call["UpdateExpression"].startswith("ADD ") and "ConditionExpression" not in call


def test_the_documented_cost_per_million_requests_is_priced_at_the_prices_the_bench_uses() -> None:
    from gateway_dev.bench.cost import AWS_PRICES

    # One line per delivery: an invocation of 256 MB for ~50 ms, and a transaction of 2 items (marker, sum) at
    # 2 write units each; 100 lines of 5 keys per delivery: one invocation, 6 items.
    invocation = AWS_PRICES["lambda_per_request"] + 0.25 * 0.05 * AWS_PRICES["lambda_arm_per_gb_second"]
    worst = invocation + 2 * 2 * AWS_PRICES["dynamodb_per_write_unit"]
    busy = (invocation + 6 * 2 * AWS_PRICES["dynamodb_per_write_unit"]) / 100
    readme = (ROOT / "README.md").read_text()
    assert f"At most ${worst * 1e6:.2f} per million requests" in readme
    assert f"about ${busy * 1e6:.2f} per million when deliveries carry 100 lines of 5 keys" in readme


def test_a_batch_adds_each_item_at_its_model_and_counts_one_request() -> None:
    # Given a batch whose items were a miss at small, a hit at large and a refused item
    items = [
        {"status": 200, "model": SMALL, "cache": "MISS", "prompt_tokens": 1000, "completion_tokens": 2000},
        {"status": 200, "model": "mistral-large-latest", "cache": "HIT", "tokens_from_cache": 30,
         "prompt_tokens_from_cache": 10, "completion_tokens_from_cache": 20, "single_flight": "ignored"},
        {"status": 422},
    ]  # fmt: skip
    line = {"message": "request served", "caller": "k1", "status": 200, "cache": "BATCH", **spend.batch_fields(items)}
    # Then its line carries the sums, and each item's spend fields only
    assert line["prompt_tokens"] == 1000 and line["completion_tokens"] == 2000 and line["tokens_from_cache"] == 30
    assert all("single_flight" not in item for item in line["batch_usage"])
    # And it adds one request (no model), and each item's tokens, cost and savings at the item's model
    table = RecordingTable()
    record(line, table, now=86_400 * 20_000)
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
