"""Spend per key is off the request path: a hit served from the container's memory makes no AWS call at all,
and its spend still reaches `keys usage`, delivered from its "request served" line to the spend function as
CloudWatch Logs' subscription filter delivers it (locally: gateway_dev/runner/spend_delivery.py).

Every AWS call any boto3 client in this process makes is seen (botocore's BaseClient._make_api_call), with the
thread that made it: the request runs on the test's thread, the delivery on its own."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from gateway_dev.ops import spend as spend_admin
from gateway_dev.runner import spend_delivery

QUOTA_TABLE = "mistral-gateway-QuotaTable"
MODEL = "mistral-small-latest"


@dataclass
class Call:
    thread: int
    operation: str
    params: dict[str, Any]


@pytest.fixture
def aws_calls(gateway: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Call]]:
    from botocore.client import BaseClient

    calls: list[Call] = []
    real = BaseClient._make_api_call

    def spy(client: Any, operation: str, params: dict[str, Any]) -> Any:
        calls.append(Call(threading.get_ident(), operation, params))
        return real(client, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", spy)
    yield calls


def on_this_thread(calls: list[Call]) -> list[str]:
    me = threading.get_ident()
    return [call.operation for call in calls if call.thread == me]


def usage(key_ids: set[str]) -> dict[str, dict[str, Any]]:
    """What `keys usage` reports per key (its read flushes the local delivery first)."""
    rows = spend_admin.read_counters(boto3.client("dynamodb"), QUOTA_TABLE, key_ids, "2000-01-01")
    return {row["key_id"]: row for row in spend_admin.aggregate(rows, {}, "key")}


def test_a_hit_from_memory_makes_no_aws_call_and_its_spend_still_reaches_keys_usage(
    gateway: Any, emulator: Any, chat_body: Any, aws_calls: list[Call]
) -> None:
    # Given an answer alice fetched once (a miss: the cache table, her limits, Mistral)
    body = chat_body("the hot prompt of the morning", model=MODEL)
    miss = gateway.chat(body, api_key_id="alice")
    assert miss.header("X-Cache") == "MISS"
    assert on_this_thread(aws_calls)  # the miss did use AWS
    assert not any(  # but never the spend counters: the request path writes no spend
        str(call.params.get("Key", {}).get("pk", {}).get("S", "")).startswith("spend#") for call in aws_calls
    )
    spend_delivery.flush()
    aws_calls.clear()

    # When she asks again, and the answer comes from the container's memory
    hit = gateway.chat(body, api_key_id="alice")

    # Then the hit made no AWS call at all, on its thread
    assert hit.header("X-Cache") == "HIT" and hit.body == miss.body
    served = [r for r in gateway.log_records() if r.get("message") == "request served"]
    assert served[-1]["cache_source"] == "memory" and served[-1]["caller"] == "alice"
    assert on_this_thread(aws_calls) == []

    # And `keys usage` has both requests, the hit's saving included, applied by the delivery (one transaction)
    # And bob, who asked once, has only his own request
    gateway.chat(chat_body("bob's own question, once", model=MODEL), api_key_id="bob")
    report = usage({"alice", "bob"})
    delivered = [call.operation for call in aws_calls if call.thread != threading.get_ident()]
    assert "TransactWriteItems" in delivered and "UpdateItem" not in delivered
    usage_of_miss = miss.json["usage"]
    alice = report["alice"]
    assert (alice["requests"], alice["cache_hits"]) == (2, 1)
    assert alice["prompt_tokens"] == usage_of_miss["prompt_tokens"]  # Mistral billed the miss only
    assert alice["saved_tokens"] == usage_of_miss["total_tokens"] and alice["saved_usd"] > 0
    assert (report["bob"]["requests"], report["bob"]["cache_hits"]) == (1, 0)


def test_many_hits_from_memory_are_each_counted_once(gateway: Any, emulator: Any, chat_body: Any) -> None:
    # Given a hot prompt, and many hits of it from memory
    body = chat_body("asked again and again", model=MODEL)
    gateway.chat(body, api_key_id="carol")
    for _ in range(25):
        assert gateway.chat(body, api_key_id="carol").header("X-Cache") == "HIT"
    # Then each is in the key's spend exactly once: as many requests as lines, no more, no fewer
    lines = [r for r in gateway.log_records() if r.get("message") == "request served" and r.get("caller") == "carol"]
    assert all(line.get("cache_source") == "memory" for line in lines[1:])  # the hits came from memory
    carol = usage({"carol"})["carol"]
    assert carol["requests"] == len(lines) == 26 and carol["cache_hits"] == 25
