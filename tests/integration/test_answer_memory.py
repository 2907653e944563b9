"""Recent answers in the container's memory, in front of the cache table, seen through the API handler.

Each test counts the DynamoDB calls the gateway's own boto3 client makes (botocore's event hooks), so it can
say which answers came from memory and that memory never serves what the table would not.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

CHAT = "/v1/chat/completions"
TABLE = "mistral-gateway-CacheTable"


@pytest.fixture
def table_calls(gateway: Any) -> Iterator[list[str]]:
    """The cache table operations the gateway makes (GetItem, UpdateItem, PutItem...), in order."""
    from mistral_gateway.container import current

    calls: list[str] = []

    def seen(model: Any, params: Any, **_: Any) -> None:
        if params.get("TableName") == TABLE:
            calls.append(model.name)

    events = current().aws_client("dynamodb").meta.events
    events.register("before-parameter-build.dynamodb", seen)
    yield calls
    events.unregister("before-parameter-build.dynamodb", seen)


def test_a_repeated_request_is_a_hit_from_memory_without_a_table_call(gateway, emulator, chat_body, table_calls):
    # Given an answer fetched and stored once
    body = chat_body("asked twice in one container")
    first = gateway.chat(body, api_key_id="tenant-a")
    assert first.header("X-Cache") == "MISS"
    table_calls.clear()
    # When the same caller asks again
    second = gateway.chat(body, api_key_id="tenant-a")
    # Then it is a hit, byte for byte, and the table was not asked
    assert second.header("X-Cache") == "HIT" and second.body == first.body
    assert table_calls == []
    assert emulator.calls(CHAT) == 1
    assert any(record.get("cache_source") == "memory" for record in gateway.log_records())


def test_two_callers_never_share_an_answer_through_memory(gateway, emulator, chat_body, table_calls):
    # Given caller A's answer in memory
    body = chat_body("same words from two tenants")
    answer_a = gateway.chat(body, api_key_id="tenant-a")
    assert gateway.chat(body, api_key_id="tenant-a").header("X-Cache") == "HIT"
    table_calls.clear()
    # When caller B sends the same request
    answer_b = gateway.chat(body, api_key_id="tenant-b")
    # Then B's is a miss that asked the table and Mistral, not a hit from A's memory
    assert answer_b.header("X-Cache") == "MISS" and "PutItem" in table_calls
    assert emulator.calls(CHAT) == 2
    # And each caller then gets its own answer from memory, and a third caller still misses
    table_calls.clear()
    assert gateway.chat(body, api_key_id="tenant-a").body == answer_a.body
    assert gateway.chat(body, api_key_id="tenant-b").body == answer_b.body
    assert table_calls == []
    assert gateway.chat(body, api_key_id="tenant-c").header("X-Cache") == "MISS"
    assert emulator.calls(CHAT) == 3


def test_no_cache_and_no_store_skip_memory_too(gateway, emulator, chat_body):
    body = chat_body("cached, then refused by the caller")
    gateway.chat(body)
    assert gateway.chat(body, headers={"Cache-Control": "no-cache"}).header("X-Cache") == "BYPASS"
    assert gateway.chat(body, headers={"Cache-Control": "no-store"}).header("X-Cache") == "BYPASS"
    assert emulator.calls(CHAT) == 3


def test_a_no_cache_refresh_replaces_the_answer_in_memory(gateway, emulator, chat_body):
    body = chat_body("refreshed by one caller")
    gateway.chat(body)
    refreshed = gateway.chat(body, headers={"Cache-Control": "no-cache"})
    again = gateway.chat(body)
    assert again.header("X-Cache") == "HIT" and again.body == refreshed.body


def test_max_age_is_honoured_from_memory(gateway, emulator, chat_body, monkeypatch):
    body = chat_body("an answer that ages")
    gateway.chat(body)
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 30)
    # Too old for this caller: not served from memory (nor from the table: it is the same answer)
    assert gateway.chat(body, headers={"Cache-Control": "max-age=10"}).header("X-Cache") == "MISS"
    assert gateway.chat(body, headers={"Cache-Control": "max-age=60"}).header("X-Cache") == "HIT"


def test_an_answer_stored_for_max_age_expires_in_memory_by_its_own_ttl(gateway, emulator, chat_body, monkeypatch):
    body = chat_body("stored briefly")
    gateway.chat(body, headers={"Cache-Control": "max-age=5"})
    assert gateway.chat(body).header("X-Cache") == "HIT"
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 6)
    assert gateway.chat(body).header("X-Cache") == "MISS"
    assert emulator.calls(CHAT) == 2


def test_an_answer_deleted_from_the_table_leaves_memory_within_answer_memory_seconds(
    gateway, emulator, chat_body, monkeypatch
):
    # Given an answer in memory, then deleted from the table by hand
    body = chat_body("purged by the operator")
    gateway.chat(body)
    client = boto3.client("dynamodb")
    for item in client.scan(TableName=TABLE)["Items"]:
        client.delete_item(TableName=TABLE, Key={"pk": item["pk"]})
    # Within ANSWER_MEMORY_SECONDS (60 s) memory may still serve it: the documented window
    assert gateway.chat(body).header("X-Cache") == "HIT"
    # After it, the table is asked again and the deletion is seen
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 61)
    assert gateway.chat(body).header("X-Cache") == "MISS"


def test_answer_memory_off_asks_the_table_every_time(gateway, emulator, chat_body, monkeypatch, reconfigure):
    monkeypatch.setenv("ANSWER_MEMORY_BYTES", "0")
    reconfigure()
    from mistral_gateway.container import current

    calls: list[str] = []
    current().aws_client("dynamodb").meta.events.register(
        "before-parameter-build.dynamodb", lambda model, **_: calls.append(model.name)
    )
    body = chat_body("no memory")
    gateway.chat(body)
    calls.clear()
    assert gateway.chat(body).header("X-Cache") == "HIT"
    assert calls == ["UpdateItem"]  # the lookup (refused by the fresh answer, which it returned)


# --- a miss: one table round trip before Mistral is called ------------------------------------------------------


def test_a_miss_makes_one_table_call_before_mistral_and_one_after(gateway, emulator, chat_body, table_calls):
    from mistral_gateway.container import current

    at_upstream: list[list[str]] = []
    real_sdk = current().sdk

    def sdk(name: str) -> Any:
        at_upstream.append(list(table_calls))  # the table calls made by the time Mistral is asked
        return real_sdk(name)

    current().sdk = sdk  # type: ignore[method-assign]
    response = gateway.chat(chat_body("one round trip"), api_key_id="tenant-a")
    assert response.header("X-Cache") == "MISS"
    assert at_upstream and at_upstream[0] == ["UpdateItem"]  # the lookup is the lease claim
    assert table_calls == ["UpdateItem", "PutItem"]


def test_a_table_hit_in_a_new_container_is_one_call(gateway, emulator, chat_body, table_calls, reconfigure):
    body = chat_body("stored by another container")
    gateway.chat(body)
    reconfigure()  # a new container: empty memory, new clients
    from mistral_gateway.container import current

    calls: list[str] = []
    current().aws_client("dynamodb").meta.events.register(
        "before-parameter-build.dynamodb", lambda model, **_: calls.append(model.name)
    )
    assert gateway.chat(body).header("X-Cache") == "HIT"
    assert calls == ["UpdateItem"]  # refused (a fresh answer is there), which returned it
    assert emulator.calls(CHAT) == 1


def test_a_refused_request_gives_back_the_lease_it_took_on_lookup(gateway, emulator, chat_body, table_calls):
    # Given a request the SDK refuses, which is only checked on a miss (after the lookup took the lease)
    tool = [{"type": "function", "function": {"name": "lookup"}}]  # no parameters: the SDK's 422
    response = gateway.chat(chat_body("refused late", tools=tool))
    assert response.status == 422 and response.json["code"] == "sdk_refused"
    assert table_calls == ["UpdateItem", "DeleteItem"]  # the lookup's lease, then the item it created is gone
    # Then the table is as it was: no lease for an identical request to wait on, nothing stored
    assert boto3.client("dynamodb").scan(TableName=TABLE)["Items"] == []
    assert emulator.calls(CHAT) == 0


def test_a_refused_request_leaves_an_expired_answer_in_place(gateway, emulator, chat_body, monkeypatch, table_calls):
    # Given an expired answer kept for stale-if-error, under the key of a request the SDK refuses
    from mistral_gateway.container import current
    from mistral_gateway.flow.answers import cache_scope
    from mistral_gateway.requests.canonical import cache_key, canonical_chat

    tool = [{"type": "function", "function": {"name": "lookup"}}]
    body = chat_body("refused, with an old answer", tools=tool)
    key = cache_key("chat", cache_scope(None), canonical_chat(_validated_form(body)))
    current().answers.put(key, b'{"old": true}', ttl_seconds=1, prompt_tokens=1, completion_tokens=1)
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 5)
    # When it is refused after the lookup took the lease
    table_calls.clear()
    assert gateway.chat(body).status == 422
    assert table_calls == ["UpdateItem", "UpdateItem"]  # the lease taken, then removed
    # Then the lease is removed and the old answer kept
    (item,) = boto3.client("dynamodb").scan(TableName=TABLE)["Items"]
    assert "body" in item and "lease_owner" not in item


def _validated_form(body: dict[str, Any]) -> dict[str, Any]:
    from mistral_gateway.flow.checks import admitted_completion

    form, _ = admitted_completion("chat", body)
    return form


def test_under_a_shared_scope_memory_shares_exactly_what_the_table_shares(
    gateway, emulator, chat_body, monkeypatch, reconfigure, table_calls
):
    # Given CacheScope=shared: one cache for every caller, in the table and so in memory
    monkeypatch.setenv("CACHE_SCOPE", "shared")
    reconfigure()
    from mistral_gateway.container import current

    calls: list[str] = []

    def seen(model: Any, params: Any, **_: Any) -> None:
        if params.get("TableName") == TABLE:  # the cache table (the quota table is asked for budgets' headers)
            calls.append(model.name)

    current().aws_client("dynamodb").meta.events.register("before-parameter-build.dynamodb", seen)
    body = chat_body("a hot prompt every tenant sends")
    first = gateway.chat(body, api_key_id="tenant-a")
    calls.clear()
    # When other callers send it: hits from memory, no DynamoDB call (the hot key is no hot partition)
    for tenant in ("tenant-b", "tenant-c", "tenant-a"):
        again = gateway.chat(body, api_key_id=tenant)
        assert again.header("X-Cache") == "HIT" and again.body == first.body
    assert calls == [] and emulator.calls(CHAT) == 1
