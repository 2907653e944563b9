"""The caller's own stored `/v1/responses`: kept after a create (`Plan`), read back, deleted, listed, chained.

One item per (caller, response id) in the responses table (stores/responses.py). Another caller's id, an unknown
one, an expired or deleted one are the same 404 (`response_not_found`), and nothing is sent to Mistral.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from mistral_gateway.container import current, settings
from mistral_gateway.flow import answers
from mistral_gateway.platform import observability
from mistral_gateway.platform.errors import (
    InvalidRequest,
    NotFound,
    ServiceUnavailable,
)
from mistral_gateway.stores.responses import ResponsesStore, StoredResponse, StoreUnavailable

# What a response id may look like (Mistral's and OpenAI's are short word characters); anything else is a 404
# without a table read.
RESPONSE_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


def not_found(response_id: str) -> NotFound:
    """The one answer for a response the caller cannot have: another caller's, unknown, expired, deleted."""
    shown = observability.bounded(response_id)
    return NotFound(f"Response with id '{shown}' not found.", param="response_id", code="response_not_found")


def table() -> ResponsesStore:
    return current().responses


def _now() -> float:
    return current().clock()


@dataclass
class Plan:
    """What one create request does with its answer: whether and how it is stored."""

    caller: str | None
    store: bool
    previous_id: str | None
    context: list[Any]
    turn_items: int
    model: str

    def finished(self, response: dict[str, Any]) -> dict[str, Any]:
        """The response as the caller gets it (plain requests): stored when asked, `store` saying whether it
        was, `previous_response_id` the caller's own (Mistral never saw it)."""
        response = {**response, "previous_response_id": self.previous_id}
        response["store"] = self.keep(response)
        return response

    def keep(self, response: dict[str, Any]) -> bool:
        """Store the response when asked; False when not asked or when it could not be stored (the caller
        then sees `store: false`: the answer is not lost, but it cannot be chained or read back)."""
        if not self.store or not isinstance(response.get("id"), str) or not RESPONSE_ID.match(response["id"]):
            return False
        now = _now()
        expires_at = int(now) + settings().responses_ttl_seconds
        stored = StoredResponse({**response, "store": True}, self.context, self.turn_items, expires_at)
        kept = table().put(self.caller, stored, now)
        observability.log_keys(response_stored=kept)
        return kept


def input_items(value: str | list[Any]) -> list[Any]:
    """The input as a list of items: a string is one user message (OpenAI's and Mistral's reading of it)."""
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    return list(value)


def expanded_history(caller: str | None, previous_id: str) -> list[Any]:
    """The caller's own earlier turns before `previous_id`'s answer, and that answer's output, as input items.
    404 for any response the caller cannot have; 503 when the table cannot be read (never a partial history)."""
    if not RESPONSE_ID.match(previous_id):
        raise _previous_not_found(previous_id)
    try:
        stored = table().get(caller, previous_id, _now())
    except StoreUnavailable:
        raise ServiceUnavailable(
            "Stored responses cannot be read right now, so the earlier turns of this chain are unavailable; "
            "retry shortly.",
            code="response_store_unavailable",
            headers={"Retry-After": "1"},
        ) from None
    if stored is None:
        raise _previous_not_found(previous_id)
    output = stored.response.get("output")
    return [*stored.context, *(output if isinstance(output, list) else [])]


def _previous_not_found(previous_id: str) -> NotFound:
    error = not_found(previous_id)
    error.param = "previous_response_id"
    return error


def _stored(caller: str | None, response_id: str) -> StoredResponse:
    return _in_table(caller, response_id, "get")  # type: ignore[no-any-return]


def _in_table(caller: str | None, response_id: str, operation: str) -> Any:
    """`operation` (get | delete) on the caller's own response; the one 404 for what the caller cannot have."""
    if not RESPONSE_ID.match(response_id):
        raise not_found(response_id)
    try:
        found = getattr(table(), operation)(caller, response_id, _now())
    except StoreUnavailable:
        raise _unavailable() from None
    if not found:
        raise not_found(response_id)
    return found


def _unavailable() -> ServiceUnavailable:
    return ServiceUnavailable(
        "Stored responses cannot be read right now; retry shortly.",
        code="response_store_unavailable",
        headers={"Retry-After": "1"},
    )


def retrieve(response_id: str, *, caller: str | None) -> answers.Answer:
    """GET /v1/responses/{id}: the caller's own stored response."""
    stored = _stored(caller, response_id)
    return answers.Answer(body=json.dumps(stored.response, ensure_ascii=False), cache_status="BYPASS")


def delete(response_id: str, *, caller: str | None) -> answers.Answer:
    """DELETE /v1/responses/{id}: OpenAI's answer shape; 404 for what the caller cannot have."""
    _in_table(caller, response_id, "delete")
    return answers.Answer(
        body=json.dumps({"id": response_id, "object": "response", "deleted": True}), cache_status="BYPASS"
    )


def list_input_items(
    response_id: str,
    *,
    caller: str | None,
    order: str | None = None,
    limit: str | None = None,
    after: str | None = None,
) -> answers.Answer:
    """GET /v1/responses/{id}/input_items: this turn's own input items (not the earlier turns'), OpenAI's list shape
    and query (`order` desc by default, `limit` 1-100 (20), `after` an item id)."""
    if order not in (None, "asc", "desc"):
        raise InvalidRequest("`order` must be asc or desc.", param="order")
    try:
        count = 20 if limit is None else int(limit)
    except ValueError:
        count = 0
    if not 1 <= count <= 100:
        raise InvalidRequest("`limit` must be a whole number from 1 to 100.", param="limit")
    stored = _stored(caller, response_id)
    items = stored.context[len(stored.context) - stored.turn_items :]
    if order != "asc":
        items = items[::-1]
    ids = [item.get("id") if isinstance(item, dict) else None for item in items]
    if after is not None and after in ids:
        items = items[ids.index(after) + 1 :]
    page = items[:count]
    page_ids = [item.get("id") for item in page if isinstance(item, dict) and isinstance(item.get("id"), str)]
    listing = {
        "object": "list",
        "data": page,
        "first_id": page_ids[0] if page_ids else None,
        "last_id": page_ids[-1] if page_ids else None,
        "has_more": len(items) > count,
    }
    return answers.Answer(body=json.dumps(listing, ensure_ascii=False), cache_status="BYPASS")
