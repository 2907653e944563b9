"""The ownership ledger: which caller created which Mistral resource, in DynamoDB (template.yaml OwnershipTable).

One item per resource: pk `<kind>#<id>`, its `owner` (the caller's API key id, "anonymous" without one),
`created` (epoch microseconds: the order lists show) and, for a library's documents, the `parent` library.
The `by_owner` index (HASH `scope` = `<owner>#<kind>[#<parent>]`, RANGE `created`) lists a caller's own ids
newest first.

Every operation is one DynamoDB round trip: a check is one BatchGetItem (all ids of a path at once), a
create is one conditional PutItem, a listing one Query (a page of up to 1 MB of keys, ~20,000 ids). Unlike
the answer cache, the ledger fails CLOSED: when it cannot answer, the caller gets 503 `ledger_unavailable`
and Mistral is not asked (failing open would hand out other callers' resources).
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Callable, Iterable
from typing import Any

from mistral_gateway.platform import aws
from mistral_gateway.platform.errors import ServiceUnavailable
from mistral_gateway.platform.observability import logger

INDEX = "by_owner"


class LedgerUnavailable(ServiceUnavailable):
    def __init__(self) -> None:
        super().__init__(
            "The gateway cannot check or record who owns this resource right now; retry shortly.",
            code="ledger_unavailable",
            headers={"Retry-After": "1"},
        )


class OwnedElsewhere(Exception):
    """A create answered with an id the ledger already holds for another caller."""


def owner_of(caller: str | None) -> str:
    return caller or "anonymous"


def scope(owner: str, kind: str, parent: str | None = None) -> str:
    return f"{owner}#{kind}" + (f"#{parent}" if parent else "")


class Ledger:
    def __init__(
        self, table_name: str, client: Any, clock: Any = time.time, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.table_name = table_name
        self.client = client
        self.clock = clock
        self._sleep = sleep  # the pause before keys DynamoDB left unprocessed are asked again

    def owners(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """{(kind, id): owner} for the keys the ledger knows (one BatchGetItem, consistent reads)."""
        pks = [f"{kind}#{rid}" for kind, rid in keys]
        if not pks:
            return {}
        try:
            items = aws.batch_get(
                lambda **request: self._call("batch_get_item", **request),
                self.table_name,
                pks,
                attempts=3,  # unprocessed keys (throttling) are asked again, twice at most
                sleep=self._sleep,
                ConsistentRead=True,
                ProjectionExpression="pk, #o",
                ExpressionAttributeNames={"#o": "owner"},
            )
        except aws.Unprocessed:
            logger.warning(
                "ownership ledger unavailable", extra={"operation": "batch_get_item", "error_code": "UnprocessedKeys"}
            )
            raise LedgerUnavailable() from None
        found: dict[tuple[str, str], str] = {}
        for pk, item in items.items():
            kind, _, rid = pk.partition("#")
            found[(kind, rid)] = item["owner"]["S"]
        return found

    def record(self, owner: str, kind: str, rid: str, parent: str | None = None) -> None:
        """Record `rid` as `owner`'s; a repeat for the same owner is a no-op, another owner's id is refused."""
        item = {
            "pk": {"S": f"{kind}#{rid}"},
            "owner": {"S": owner},
            "scope": {"S": scope(owner, kind, parent)},
            "created": {"N": str(int(self.clock() * 1_000_000))},
        }
        if parent:
            item["parent"] = {"S": parent}
        try:
            self._call(
                "put_item",
                TableName=self.table_name,
                Item=item,
                ConditionExpression="attribute_not_exists(pk) OR #o = :owner",
                ExpressionAttributeNames={"#o": "owner"},
                ExpressionAttributeValues={":owner": {"S": owner}},
                conditional=True,
            )
        except _ConditionFailed:
            raise OwnedElsewhere(f"{kind} already recorded for another caller") from None

    def claim(self, owner: str, kind: str, rid: str) -> bool:
        """Record `rid` only if nobody has: whether this call was the first (a once-only marker). The marker
        carries a token of this call, so a write botocore sent again after its answer was lost (the first
        attempt landed) still knows it was first."""
        token = secrets.token_hex(8)
        item = {"pk": {"S": f"{kind}#{rid}"}, "owner": {"S": owner}, "token": {"S": token}}
        try:
            self._call(
                "put_item",
                TableName=self.table_name,
                Item=item,
                ConditionExpression="attribute_not_exists(pk)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
                conditional=True,
            )
        except _ConditionFailed as refused:
            return refused.item.get("token", {}).get("S") == token
        return True

    def forget(self, owner: str, kind: str, rid: str) -> None:
        """Drop a deleted resource (only the owner's record)."""
        with contextlib.suppress(_ConditionFailed):
            self._call(
                "delete_item",
                TableName=self.table_name,
                Key={"pk": {"S": f"{kind}#{rid}"}},
                ConditionExpression="#o = :owner",
                ExpressionAttributeNames={"#o": "owner"},
                ExpressionAttributeValues={":owner": {"S": owner}},
                conditional=True,
            )

    def ids(self, owner: str, kind: str, parent: str | None = None) -> list[str]:
        """The owner's ids of one kind, newest first."""
        ids: list[str] = []
        start: dict[str, Any] | None = None
        while True:
            extra: dict[str, Any] = {"ExclusiveStartKey": start} if start else {}
            answer = self._call(
                "query",
                TableName=self.table_name,
                IndexName=INDEX,
                KeyConditionExpression="#s = :scope",
                ExpressionAttributeNames={"#s": "scope"},
                ExpressionAttributeValues={":scope": {"S": scope(owner, kind, parent)}},
                ScanIndexForward=False,
                **extra,
            )
            ids.extend(item["pk"]["S"].partition("#")[2] for item in answer.get("Items", []))
            start = answer.get("LastEvaluatedKey")
            if not start:
                return ids

    def _call(self, operation: str, *, conditional: bool = False, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self.client, operation)(**kwargs)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if conditional and code == "ConditionalCheckFailedException":
                raise _ConditionFailed(error.response.get("Item") or {}) from None
            logger.warning("ownership ledger unavailable", extra={"operation": operation, "error_code": code})
            raise LedgerUnavailable() from None
        except BotoCoreError as error:
            logger.warning(
                "ownership ledger unavailable", extra={"operation": operation, "error_code": type(error).__name__}
            )
            raise LedgerUnavailable() from None


class _ConditionFailed(Exception):
    def __init__(self, item: dict[str, Any]) -> None:
        super().__init__()
        self.item = item  # what refused the write, when the call asked for it
