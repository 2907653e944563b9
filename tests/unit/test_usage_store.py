"""The quota table's reads on their own (usage_store.DynamoUsage) against a stand-in for a DynamoDB client: a key's
limits and the default's in one BatchGetItem, its limit on keys per call, and what DynamoDB leaves unprocessed."""

from __future__ import annotations

from typing import Any

import pytest

from mistral_gateway.policies.usage_store import DynamoUsage, StoreUnavailable

TABLE = "quota"


class BatchReads:
    """batch_get_item over a dict of items; `unprocessed` is how many calls in a row leave their last key out."""

    def __init__(self, items: dict[str, dict[str, Any]], unprocessed: int = 0) -> None:
        self.items = items
        self.unprocessed = unprocessed
        self.calls: list[list[str]] = []

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        keys = [key["pk"]["S"] for key in RequestItems[TABLE]["Keys"]]
        assert len(keys) <= 100 and len(set(keys)) == len(keys)  # what DynamoDB would refuse
        self.calls.append(keys)
        served, left = (keys[:-1], keys[-1:]) if self.unprocessed else (keys, [])
        self.unprocessed = max(0, self.unprocessed - 1)
        found = [{"pk": {"S": key}, **self.items[key]} for key in served if key in self.items]
        unprocessed = {TABLE: {"Keys": [{"pk": {"S": key}} for key in left]}} if left else {}
        return {"Responses": {TABLE: found}, "UnprocessedKeys": unprocessed}


def store(client: BatchReads, pauses: list[float] | None = None) -> DynamoUsage:
    return DynamoUsage(lambda: client, TABLE, sleep=(pauses if pauses is not None else []).append)


def test_limits_of_several_keys_are_one_read_and_absent_items_are_left_out() -> None:
    client = BatchReads(
        {
            "limits#alice": {"models": {"SS": ["b", "a"]}, "key_expires_at": {"N": "9"}},
            "limits#default": {"requests_per_day": {"N": "5"}, "unrelated": {"S": "x"}},
        }
    )
    found = store(client).limits(["limits#alice", "limits#default", "limits#nobody", "limits#default"])
    assert client.calls == [["limits#alice", "limits#default", "limits#nobody"]]  # a repeated key asked once
    assert found == {
        "limits#alice": {"models": ["a", "b"], "key_expires_at": 9},
        "limits#default": {"requests_per_day": 5},
    }


def test_more_keys_than_one_call_may_carry_take_one_call_per_hundred() -> None:
    keys = [f"limits#key-{n}" for n in range(230)]
    client = BatchReads({key: {"requests_per_day": {"N": "1"}} for key in keys})
    assert len(store(client).limits(keys)) == 230
    assert [len(call) for call in client.calls] == [100, 100, 30]


def test_a_key_left_unprocessed_is_asked_again_after_a_pause() -> None:
    client = BatchReads({"usage#a": {"requests": {"N": "2"}}, "usage#b": {"tokens": {"N": "7"}}}, unprocessed=1)
    pauses: list[float] = []
    totals = store(client, pauses).totals(["usage#a", "usage#b"])
    assert client.calls == [["usage#a", "usage#b"], ["usage#b"]]
    assert len(pauses) == 1 and 0 < pauses[0] <= 0.05  # after a short, jittered pause
    assert totals == {"usage#a": {"requests": 2, "tokens": 0}, "usage#b": {"requests": 0, "tokens": 7}}


def test_a_key_still_unprocessed_makes_the_store_unavailable_not_an_absent_item() -> None:
    # An item missing from the answer would read as "this key has no limits": the budgets must know it failed
    client = BatchReads({"limits#alice": {"requests_per_day": {"N": "1"}}}, unprocessed=2)
    with pytest.raises(StoreUnavailable) as failed:
        store(client).limits(["limits#alice"])
    assert failed.value.code == "UnprocessedKeys" and len(client.calls) == 2
