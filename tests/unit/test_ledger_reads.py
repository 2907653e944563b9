"""The ownership ledger's batched read on its own (Ledger.owners) against a stand-in for a DynamoDB client: the
same BatchGetItem helper as the quota table's (aws.batch_get), with the ledger's consistent, projected reads and
its own three attempts when DynamoDB leaves keys unprocessed."""

from __future__ import annotations

from typing import Any

import pytest

from mistral_gateway.stores.ledger import Ledger, LedgerUnavailable

TABLE = "ledger"


class Throttled:
    """batch_get_item that leaves the last key unprocessed on its first `unprocessed` calls."""

    def __init__(self, owners: dict[str, str], unprocessed: int) -> None:
        self.owners = owners
        self.unprocessed = unprocessed
        self.requests: list[dict[str, Any]] = []

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        request = RequestItems[TABLE]
        self.requests.append(request)
        keys = [key["pk"]["S"] for key in request["Keys"]]
        assert len(set(keys)) == len(keys)  # DynamoDB refuses a repeated key (ValidationException)
        served, left = (keys[:-1], keys[-1:]) if self.unprocessed else (keys, [])
        self.unprocessed = max(0, self.unprocessed - 1)
        found = [{"pk": {"S": key}, "owner": {"S": self.owners[key]}} for key in served if key in self.owners]
        unprocessed = {TABLE: {**request, "Keys": [{"pk": {"S": key}} for key in left]}} if left else {}
        return {"Responses": {TABLE: found}, "UnprocessedKeys": unprocessed}


def test_unprocessed_keys_are_asked_again_with_the_same_consistent_projected_read() -> None:
    # Given a table that leaves the last key unprocessed twice, that key being owned
    client, pauses = Throttled({"file#f1": "alice", "batch#b1": "bob"}, unprocessed=2), []
    ledger = Ledger(TABLE, client, sleep=pauses.append)
    # When owners are read (a key asked twice, one nobody owns)
    owners = ledger.owners([("file", "nobody"), ("file", "f1"), ("file", "nobody"), ("batch", "b1")])
    # Then the throttled key's owner is found on the third call, after two short pauses, each read consistent
    assert owners == {("file", "f1"): "alice", ("batch", "b1"): "bob"}
    assert len(client.requests) == 3 and len(pauses) == 2 and all(0 < pause <= 0.05 for pause in pauses)
    assert all(r["ConsistentRead"] and r["ProjectionExpression"] == "pk, #o" for r in client.requests)


def test_keys_still_unprocessed_after_three_calls_make_the_ledger_unavailable() -> None:
    client = Throttled({"file#f1": "alice"}, unprocessed=3)
    with pytest.raises(LedgerUnavailable):
        Ledger(TABLE, client, sleep=lambda _: None).owners([("file", "f1")])
    assert len(client.requests) == 3  # it fails closed rather than read a throttled key as unowned
