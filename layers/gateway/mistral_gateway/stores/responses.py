"""The stored responses of `/v1/responses`: one DynamoDB item per (caller, response id), with a TTL.

Mistral's Responses API is stateless (`store` may only be false, there is no GET by id), while OpenAI-Responses
clients default to `store: true` and chain turns with `previous_response_id`. The gateway keeps what those
clients need itself, per caller:

- `pk` = `<caller>#<response id>`: a caller can only ever address its own items; another caller's id, an
  unknown one and an expired one are the same miss (no way to tell which ids exist).
- `response`: the response object as answered (zlib-compressed JSON).
- `context`: the whole input Mistral was sent for this turn (previous turns expanded), compressed, so the next
  turn is one GetItem: its input is `context` + this response's `output` + the new input.
- `turn_items`: how many of `context`'s last items were this turn's own input (`/input_items`).
- `expires_at`: DynamoDB's TTL attribute. DynamoDB deletes expired items lazily (hours later; moto never does),
  so every read checks it: an item past `expires_at` is gone for the caller.

Unlike the answer cache, this store does not fail open for reads: a chain whose history cannot be read is
not sent half-remembered. Read failures raise `StoreUnavailable` (the caller's 503); a failed write is
reported to the caller by the response's `store: false` (flow/responses_stored.py).
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from typing import Any

from mistral_gateway.platform import aws, observability
from mistral_gateway.platform.observability import logger

# DynamoDB's item limit is 400 KB with attribute names; what does not fit is not stored.
MAX_STORED_BYTES = 380_000


class StoreUnavailable(Exception):
    """The responses table could not be read or written (throttled, unreachable, denied, missing)."""

    def __init__(self, operation: str, code: str) -> None:
        super().__init__(f"responses table {operation} failed: {code}")
        self.operation = operation
        self.code = code


@dataclass(frozen=True)
class StoredResponse:
    response: dict[str, Any]
    context: list[Any]  # the input Mistral was sent (earlier turns expanded)
    turn_items: int  # how many of context's last items were this turn's own input
    expires_at: int


def item_key(caller: str | None, response_id: str) -> str:
    return f"{caller or 'anonymous'}#{response_id}"


@dataclass
class ResponsesStore:
    table_name: str
    dynamodb: Any  # a botocore DynamoDB client (the container's)

    def get(self, caller: str | None, response_id: str, now: float) -> StoredResponse | None:
        """The caller's own stored response, or None (absent, another caller's, or expired)."""
        try:
            with observability.traced("responses.get", lazy=True):
                item = self.dynamodb.get_item(
                    TableName=self.table_name, Key={"pk": {"S": item_key(caller, response_id)}}, ConsistentRead=True
                ).get("Item")
        except aws.errors() as error:
            raise self._failed("get", error) from None
        if not item:
            return None
        expires_at = int(item["expires_at"]["N"])
        if expires_at <= now:
            return None  # expired: DynamoDB has not deleted it yet
        try:
            return StoredResponse(
                response=json.loads(zlib.decompress(item["response"]["B"])),
                context=json.loads(zlib.decompress(item["context"]["B"])),
                turn_items=int(item["turn_items"]["N"]),
                expires_at=expires_at,
            )
        except (KeyError, ValueError, zlib.error):
            logger.error("unreadable stored response; treated as absent")
            return None

    def put(self, caller: str | None, stored: StoredResponse, now: float) -> bool:
        """Keep a response; False when it could not be (too large, or the table failed: logged and counted)."""
        response = zlib.compress(json.dumps(stored.response, separators=(",", ":")).encode())
        context = zlib.compress(json.dumps(stored.context, separators=(",", ":")).encode())
        if len(response) + len(context) > MAX_STORED_BYTES:
            logger.warning("response too large to store", extra={"stored_bytes": len(response) + len(context)})
            observability.count(observability.RESPONSE_STORE_ERRORS)
            return False
        item = {
            "pk": {"S": item_key(caller, str(stored.response["id"]))},
            "response": {"B": response},
            "context": {"B": context},
            "turn_items": {"N": str(stored.turn_items)},
            "created_at": {"N": str(int(now))},
            "expires_at": {"N": str(stored.expires_at)},
        }
        try:
            with observability.traced("responses.put", lazy=True):
                self.dynamodb.put_item(TableName=self.table_name, Item=item)
        except aws.errors() as error:
            self._failed("put", error)
            return False
        observability.count(observability.STORED_RESPONSES)
        return True

    def delete(self, caller: str | None, response_id: str, now: float) -> bool:
        """Delete the caller's own response; False when there was none to delete (or it had expired)."""
        try:
            with observability.traced("responses.delete", lazy=True):
                old = self.dynamodb.delete_item(
                    TableName=self.table_name,
                    Key={"pk": {"S": item_key(caller, response_id)}},
                    ReturnValues="ALL_OLD",
                ).get("Attributes")
        except aws.errors() as error:
            raise self._failed("delete", error) from None
        return bool(old) and int(old["expires_at"]["N"]) > now

    def _failed(self, operation: str, error: BaseException) -> StoreUnavailable:
        code = aws.error_code(error)
        logger.warning("responses table failed", extra={"operation": operation, "error_code": code})
        observability.count(observability.RESPONSE_STORE_ERRORS)
        return StoreUnavailable(operation, code)
