"""Where the budgets' limits and usage counters live: the quota table (DynamoUsage), or a dict in unit tests.

Every addition is one atomic ADD under a condition that the new total fits the limit, so concurrent requests in
any number of containers can never spend more than the budget. A failing store raises StoreUnavailable, and
the budgets fail open (quota.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

from mistral_gateway.platform import aws

UNITS = ("requests", "tokens")  # what a budget counts
LIMIT_FIELDS = ("requests_per_minute", "tokens_per_minute", "requests_per_day", "tokens_per_day")
# Beside the budgets, in the same item and the same cached read: the models the key may use (a string set;
# absent or empty = all the operator allows) and when the key stops working (epoch seconds: a rotated key's
# grace period ends, a revoked key at once). `mistral-gateway keys` writes them (local/gateway_dev/ops/keys.py).
MODELS_FIELD = "models"
KEY_EXPIRES_FIELD = "key_expires_at"  # not the table's TTL attribute: the item must outlive the key's end


class StoreUnavailable(Exception):
    """The usage store failed (throttled, unreachable, denied): budgets fail open."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class Refused(Exception):
    """An addition the store refused because a unit would pass its ceiling; `used` is what the item held."""

    def __init__(self, used: dict[str, int]) -> None:
        super().__init__("over budget")
        self.used = used


class UsageStore(Protocol):
    """Where limits and usage counts live: DynamoDB (DynamoUsage) in the gateway, a dict in unit tests.
    Every method raises StoreUnavailable when the store fails."""

    def limits(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        """The limit fields of each `limits#<key id>` item among `keys` that exists, with `models` (a list) and
        `key_expires_at` when the item has them: one read for them all (a caller's item and the default's)."""
        ...

    def add(self, key: str, counts: dict[str, int], ceilings: dict[str, int], expires_at: int) -> dict[str, int]:
        """Atomically add `counts` to the item unless a unit's current total is above its ceiling (then raise
        Refused with the item's totals); returns the new totals."""
        ...

    def adjust(self, key: str, counts: dict[str, int]) -> None:
        """Add (possibly negative) `counts`, unconditionally."""
        ...

    def totals(self, keys: list[str]) -> dict[str, dict[str, int]]:
        """The totals of each existing item among `keys`."""
        ...


class DynamoUsage:
    """The quota table: one item per caller's limits, one per caller and window counting usage."""

    def __init__(
        self, dynamodb: Callable[[], Any], table_name: str, *, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self._dynamodb = dynamodb  # built on first use: a gateway without budgets never builds it
        self.table_name = table_name
        self._sleep = sleep

    def limits(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        return {key: _limit_fields(item) for key, item in self._items(keys).items()}

    def add(self, key: str, counts: dict[str, int], ceilings: dict[str, int], expires_at: int) -> dict[str, int]:
        values = {f":{unit}": {"N": str(amount)} for unit, amount in counts.items()}
        values |= {f":max_{unit}": {"N": str(ceiling)} for unit, ceiling in ceilings.items()}
        values[":expires"] = {"N": str(expires_at)}
        arguments: dict[str, Any] = {
            "TableName": self.table_name,
            "Key": {"pk": {"S": key}},
            "UpdateExpression": "ADD requests :requests, tokens :tokens "
            "SET expires_at = if_not_exists(expires_at, :expires)",
            "ExpressionAttributeValues": values,
            "ReturnValues": "UPDATED_NEW",
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        if ceilings:
            arguments["ConditionExpression"] = " AND ".join(
                f"(attribute_not_exists({unit}) OR {unit} <= :max_{unit})" for unit in ceilings
            )
        try:
            return _counts(self._dynamodb().update_item(**arguments)["Attributes"])
        except aws.errors() as error:
            if aws.error_code(error) != "ConditionalCheckFailedException":
                raise StoreUnavailable(aws.error_code(error)) from None
            response = getattr(error, "response", None)
            raise Refused(_counts(response.get("Item", {}) if isinstance(response, dict) else {})) from None

    def adjust(self, key: str, counts: dict[str, int]) -> None:
        try:
            self._dynamodb().update_item(
                TableName=self.table_name,
                Key={"pk": {"S": key}},
                UpdateExpression="ADD requests :requests, tokens :tokens",
                ExpressionAttributeValues={f":{unit}": {"N": str(amount)} for unit, amount in counts.items()},
            )
        except aws.errors() as error:
            raise StoreUnavailable(aws.error_code(error)) from None

    def totals(self, keys: list[str]) -> dict[str, dict[str, int]]:
        return {key: _counts(item) for key, item in self._items(keys).items()}

    def _items(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        """{key: item} for the items among `keys` that exist (aws.batch_get: the unprocessed asked once more).
        Still unprocessed, the store is unavailable, since a missing item would read as "no limits" (the budgets
        then fail open, knowingly, and read again soon: quota.FAILED_LIMITS_RETRY_SECONDS)."""
        try:
            return aws.batch_get(self._dynamodb().batch_get_item, self.table_name, keys, attempts=2, sleep=self._sleep)
        except aws.Unprocessed:
            raise StoreUnavailable("UnprocessedKeys") from None
        except aws.errors() as error:
            raise StoreUnavailable(aws.error_code(error)) from None


def _counts(item: dict[str, Any]) -> dict[str, int]:
    return {unit: int(item.get(unit, {}).get("N", 0)) for unit in UNITS}


def _limit_fields(item: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = {name: int(item[name]["N"]) for name in LIMIT_FIELDS if "N" in item.get(name, {})}
    if MODELS_FIELD in item and "SS" in item[MODELS_FIELD]:
        found[MODELS_FIELD] = sorted(item[MODELS_FIELD]["SS"])
    if "N" in item.get(KEY_EXPIRES_FIELD, {}):
        found[KEY_EXPIRES_FIELD] = int(item[KEY_EXPIRES_FIELD]["N"])
    return found
