"""The spend function (functions/spend/app.py, mistral_gateway/policies/spend_batches.py): CloudWatch Logs deliveries of
"request served" lines, added per key, day and model to the quota table (moto), exactly once per delivery."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from gateway_dev.cloud.template import Template
from gateway_dev.ops import spend as spend_admin
from gateway_dev.runner.functions import LambdaContext
from mistral_gateway.platform.economics import LIST_PRICES, Prices
from mistral_gateway.policies import spend, spend_batches

QUOTA_TABLE = "mistral-gateway-QuotaTable"
PRICES = Prices(LIST_PRICES)  # the list prices, as a container without ModelPrices has them
SMALL, LARGE = "mistral-small-latest", "mistral-large-latest"  # $0.10/$0.30 and $2/$6 per million tokens
DAY_1 = 86_400 * 20_000  # 2024-10-04
DAY_2 = DAY_1 + 86_400


@pytest.fixture
def quota_table(template: Template) -> Iterator[Any]:
    from moto import mock_aws

    from gateway_dev.cloud.resources import create_resources

    with mock_aws():
        create_resources(template, mistral_api_key="unused-in-these-tests")
        yield boto3.client("dynamodb")


@pytest.fixture
def spend_function(template: Template, quota_table: Any) -> Any:
    """The spend function's handler, loaded from the template as Lambda would, its client on this moto."""
    from gateway_dev.runner.functions import handler_module, load_function

    load_function(template, "SpendFunction")
    module = handler_module(template, "SpendFunction")
    module._clients.clear()  # a client of this test's moto
    return lambda event: module.lambda_handler(event, LambdaContext(function_name="SpendFunction"))


def served(caller: str | None, model: str = SMALL, **fields: Any) -> dict[str, Any]:
    return {"level": "INFO", "message": "request served", "caller": caller, "status": 200, "model": model, **fields}


class Delivery:
    """Log events as a subscription filter delivers them: ids, timestamps (ms), messages."""

    def __init__(self, stream: str = "2024/10/04/[$LATEST]abc") -> None:
        self.stream = stream
        self.events: list[dict[str, Any]] = []

    def line(self, message: dict[str, Any] | str, at: float = DAY_1 + 60) -> Delivery:
        text = message if isinstance(message, str) else json.dumps(message)
        self.events.append({"id": f"{len(self.events):056d}", "timestamp": int(at * 1000), "message": text})
        return self

    def payload(self) -> dict[str, Any]:
        return {
            "messageType": "DATA_MESSAGE",
            "owner": "123456789012",
            "logGroup": "/aws/lambda/gateway-api",
            "logStream": self.stream,
            "subscriptionFilters": ["ApiServedLinesToSpend"],
            "logEvents": self.events,
        }

    def event(self) -> dict[str, Any]:
        return spend_batches.encode(self.payload())


def usage(dynamodb: Any) -> dict[tuple[str, str, str], dict[str, Any]]:
    rows = spend_admin.read_counters(dynamodb, QUOTA_TABLE, None, "2000-01-01")
    return {(row["key_id"], row["day"], row["model"]): row for row in rows}


def test_a_delivery_adds_its_lines_up_per_key_and_model(spend_function: Any, quota_table: Any) -> None:
    # Given a delivery of three misses of one key at one model, and a line of another function's message
    delivery = Delivery()
    for n in (1, 2, 3):
        delivery.line(served("k1", cache="MISS", prompt_tokens=100 * n, completion_tokens=10 * n))
    delivery.line({"level": "INFO", "message": "upstream call", "caller": "k1"})
    # When the spend function gets it
    result = spend_function(delivery.event())
    # Then one item holds their sums, priced at the model
    (row,) = usage(quota_table).values()
    assert (row["key_id"], row["day"], row["model"]) == ("k1", "2024-10-04", SMALL)
    assert (row["requests"], row["prompt_tokens"], row["completion_tokens"]) == (3, 600, 60)
    assert row["cost_nusd"] == round((600 * 0.10 + 60 * 0.30) / 1e6 * spend.NANO)
    assert result == {"chunks_applied": 1, "chunks_already_applied": 0}


def test_a_redelivered_batch_changes_nothing(spend_function: Any, quota_table: Any) -> None:
    # Given a delivery that was applied
    delivery = Delivery().line(served("k1", prompt_tokens=7)).line(served("k2", prompt_tokens=9))
    spend_function(delivery.event())
    before = usage(quota_table)
    # When Lambda retries it (or an operator replays it from the dead-letter queue)
    again = spend_function(delivery.event())
    # Then nothing is added twice
    assert again == {"chunks_applied": 0, "chunks_already_applied": 1}
    assert usage(quota_table) == before
    assert {key: row["requests"] for key, row in before.items()} == {
        ("k1", "2024-10-04", SMALL): 1,
        ("k2", "2024-10-04", SMALL): 1,
    }
    # And another delivery with the same lines' content (other events) is other requests: it adds
    spend_function(Delivery(stream="other").line(served("k1", prompt_tokens=7)).event())
    assert usage(quota_table)[("k1", "2024-10-04", SMALL)]["requests"] == 2


def test_a_delivery_mixing_keys_models_and_days_keeps_them_apart(spend_function: Any, quota_table: Any) -> None:
    delivery = (
        Delivery()
        .line(served("alice", SMALL, prompt_tokens=1), at=DAY_1 + 86_399)
        .line(served("alice", SMALL, prompt_tokens=2), at=DAY_2 + 1)  # the next day (UTC) by its own timestamp
        .line(served("alice", LARGE, prompt_tokens=4), at=DAY_2 + 2)
        .line(served("bob", SMALL, prompt_tokens=8, status=429), at=DAY_2 + 3)
        .line(served("bob", SMALL, cache="HIT", tokens_from_cache=5, prompt_tokens_from_cache=5), at=DAY_2 + 4)
        .line(served(None, SMALL, prompt_tokens=16), at=DAY_2 + 5)  # a public route: no key, nothing added
    )
    spend_function(delivery.event())
    rows = usage(quota_table)
    assert {key: row["prompt_tokens"] for key, row in rows.items()} == {
        ("alice", "2024-10-04", SMALL): 1,
        ("alice", "2024-10-05", SMALL): 2,
        ("alice", "2024-10-05", LARGE): 4,
        ("bob", "2024-10-05", SMALL): 8,
    }
    bob = rows[("bob", "2024-10-05", SMALL)]
    assert (bob["requests"], bob["errors"], bob["rate_limited"], bob["cache_hits"], bob["saved_tokens"]) == (
        2,
        1,
        1,
        1,
        5,
    )


def test_a_batch_line_bills_each_item_at_its_own_model(spend_function: Any, quota_table: Any) -> None:
    items = [
        {"status": 200, "model": SMALL, "cache": "MISS", "prompt_tokens": 1000, "completion_tokens": 2000},
        {"status": 200, "model": LARGE, "cache": "HIT", "tokens_from_cache": 30,
         "prompt_tokens_from_cache": 10, "completion_tokens_from_cache": 20},
    ]  # fmt: skip
    line = {"level": "INFO", "message": "request served", "caller": "k1", "status": 200, "cache": "BATCH",
            **spend.batch_fields(items)}  # fmt: skip
    spend_function(Delivery().line(line).event())
    rows = {model: row for (_, _, model), row in usage(quota_table).items()}
    assert set(rows) == {"-", SMALL, LARGE}
    assert rows["-"]["requests"] == 1 and rows[SMALL]["requests"] == 0
    assert (rows[SMALL]["prompt_tokens"], rows[SMALL]["completion_tokens"]) == (1000, 2000)
    assert rows[SMALL]["cost_nusd"] == 700_000
    assert (rows[LARGE]["cache_hits"], rows[LARGE]["saved_tokens"]) == (1, 30)
    assert rows[LARGE]["saved_nusd"] == 35_000


def test_malformed_lines_are_skipped_with_a_warning_and_the_rest_applied(
    spend_function: Any, quota_table: Any, caplog: pytest.LogCaptureFixture
) -> None:
    delivery = (
        Delivery()
        .line("not json at all {")
        .line(served("k1", prompt_tokens=3))
        .line(json.dumps(served("k1", prompt_tokens=5))[:40])  # a cut line
        .line(served("k1", prompt_tokens=["not", "a", "number"]))  # counted as 0 tokens, still a request
    )
    delivery.events.append({"id": "no-timestamp", "message": json.dumps(served("k1", prompt_tokens=11))})
    with caplog.at_level(logging.WARNING):
        result = spend_function(delivery.event())
    row = usage(quota_table)[("k1", "2024-10-04", SMALL)]
    assert (row["requests"], row["prompt_tokens"]) == (2, 3)
    assert result["chunks_applied"] == 1
    skipped = [record for record in caplog.records if record.getMessage() == "spend line skipped"]
    assert len(skipped) == 3


def test_lambdas_json_log_format_wrapping_a_line_is_read_too(spend_function: Any, quota_table: Any) -> None:
    wrapped = {"timestamp": "2024-10-04T00:01:00Z", "level": "INFO", "message": served("k1", prompt_tokens=4)}
    spend_function(Delivery().line(wrapped).event())
    assert usage(quota_table)[("k1", "2024-10-04", SMALL)]["prompt_tokens"] == 4


def test_cloudwatchs_control_message_adds_nothing(spend_function: Any, quota_table: Any) -> None:
    payload = {**Delivery().line("CWL CONTROL MESSAGE: Checking health of destination").payload()}
    payload["messageType"] = "CONTROL_MESSAGE"
    assert spend_function(spend_batches.encode(payload)) == {"chunks_applied": 0, "chunks_already_applied": 0}
    assert usage(quota_table) == {}


class FlakyTable:
    """The quota table, whose second transaction fails once (throttled) before it reaches DynamoDB."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.transactions = 0
        self.failed = False

    def transact_write_items(self, **arguments: Any) -> Any:
        from botocore.exceptions import ClientError

        self.transactions += 1
        if self.transactions == 2 and not self.failed:
            self.failed = True
            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "TransactWriteItems")
        return self.real.transact_write_items(**arguments)


def test_a_large_delivery_is_chunked_and_a_retry_after_a_partial_failure_adds_each_chunk_once(
    quota_table: Any,
) -> None:
    # Given a delivery of more (key, model) sums than one transaction holds
    keys = spend_batches.TRANSACTION_LIMIT + 20
    delivery = Delivery()
    for n in range(keys):
        delivery.line(served(f"key-{n:03d}", prompt_tokens=n + 1))
    table = FlakyTable(quota_table)
    # When its second transaction fails: the invocation fails (Lambda will retry it)
    with pytest.raises(Exception, match="ThrottlingException"):
        spend_batches.apply(delivery.payload(), PRICES, table=QUOTA_TABLE, dynamodb=table, now=DAY_1)
    assert len(usage(quota_table)) == spend_batches.TRANSACTION_LIMIT - 1  # the first chunk is in
    # And the retry applies the rest, the first chunk not twice
    applied = spend_batches.apply(delivery.payload(), PRICES, table=QUOTA_TABLE, dynamodb=table, now=DAY_1)
    assert (applied.chunks, applied.already) == (1, 1)
    rows = usage(quota_table)
    assert len(rows) == keys
    assert all(row["requests"] == 1 and row["prompt_tokens"] == int(key[4:]) + 1 for (key, _, _), row in rows.items())


def test_the_markers_expire_and_are_not_spend_items(spend_function: Any, quota_table: Any) -> None:
    spend_function(Delivery().line(served("k1")).event())
    items = quota_table.scan(TableName=QUOTA_TABLE)["Items"]
    (marker,) = [item for item in items if item["pk"]["S"].startswith(spend_batches.MARKER_PREFIX)]
    assert not marker["pk"]["S"].startswith(spend.PREFIX)
    ttl = int(marker["expires_at"]["N"]) - int(marker["applied_at"]["N"])
    assert ttl == spend_batches.MARKER_RETENTION_DAYS * 86_400 > 14 * 86_400  # outlives the dead-letter queue


class ConflictingTable:
    """The quota table, whose transactions are cancelled by another delivery's on the same item `conflicts` times."""

    def __init__(self, real: Any, conflicts: int) -> None:
        self.real = real
        self.conflicts = conflicts
        self.attempts = 0

    def transact_write_items(self, **arguments: Any) -> Any:
        from botocore.exceptions import ClientError

        self.attempts += 1
        if self.attempts <= self.conflicts:
            reasons = [{"Code": "None"}] + [{"Code": "TransactionConflict"}] * (len(arguments["TransactItems"]) - 1)
            error = {"Error": {"Code": "TransactionCanceledException", "Message": "conflict"}}
            raise ClientError({**error, "CancellationReasons": reasons}, "TransactWriteItems")  # type: ignore[arg-type]
        return self.real.transact_write_items(**arguments)


def test_a_conflict_with_another_delivery_on_a_hot_key_is_tried_again_then_left_to_lambda(quota_table: Any) -> None:
    # Given two deliveries that add to one hot key's item at the same moment: this one is cancelled twice
    delivery = Delivery().line(served("hot", prompt_tokens=5))
    pauses: list[float] = []
    table = ConflictingTable(quota_table, conflicts=2)
    # When it is applied, it is tried again after short pauses, and applied once
    applied = spend_batches.apply(
        delivery.payload(), PRICES, table=QUOTA_TABLE, dynamodb=table, now=DAY_1, sleep=pauses.append
    )
    assert (applied.chunks, table.attempts, len(pauses)) == (1, 3, 2) and all(0 <= p <= 0.1 for p in pauses)
    assert usage(quota_table)[("hot", "2024-10-04", SMALL)]["requests"] == 1
    # And a conflict that lasts fails the invocation (Lambda retries it later; nothing was applied)
    again = Delivery(stream="another").line(served("hot", prompt_tokens=5))
    endless = ConflictingTable(quota_table, conflicts=99)
    with pytest.raises(Exception, match="conflict"):
        spend_batches.apply(
            again.payload(), PRICES, table=QUOTA_TABLE, dynamodb=endless, now=DAY_1, sleep=pauses.append
        )
    assert endless.attempts == spend_batches.CONFLICT_ATTEMPTS
    assert usage(quota_table)[("hot", "2024-10-04", SMALL)]["requests"] == 1
