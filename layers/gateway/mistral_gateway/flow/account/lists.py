"""Lists under AccountRoutes=owned: only the caller's own items, in Mistral's own list shape.

Served from the ledger, not by paging through Mistral's account-wide list: one Query gives the caller's ids
(newest first) and so `total`; then one Mistral GET per item on the requested page (up to
BATCH_CONCURRENCY at once). A caller with 3 files among 10,000 costs 1 Query + 3 GETs and sees total 3 on
page 0, where filtering Mistral's list would cost 100 calls of 100 items. Filters Mistral's lists take
(purpose, status, model, agent_id, source, sample_type: exact; search: in the name) are applied to the
caller's own items, which then are all fetched (1 GET per own item); other list parameters (order_by,
include_total, created_by_me, ...) are ignored: the order is newest first. OpenAI clients' `limit` and
`after` cursor work too (their files.list iterates to the end). An item Mistral no longer has (deleted on
the account directly) is left out.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qsl

from mistral_gateway.container import current, settings
from mistral_gateway.flow import relay
from mistral_gateway.flow.relay import Forward, Relayed, json_object
from mistral_gateway.platform import observability
from mistral_gateway.platform.errors import InvalidRequest, UpstreamError

ITEM_PATHS = {
    "file": "files/{id}",
    "batch_job": "batch/jobs/{id}",
    "fine_tuning_job": "fine_tuning/jobs/{id}",
    "agent": "agents/{id}",
    "conversation": "conversations/{id}",
    "library": "libraries/{id}",
    "document": "libraries/{parent}/documents/{id}",
    "voice": "audio/voices/{id}",
}
DEFAULT_PAGE_SIZES = {"agent": 20, "voice": 10}
MAX_PAGE_SIZE = 1000
EXACT_FILTERS = ("purpose", "status", "model", "agent_id", "source", "sample_type")


def serve(request: Forward, kind: str, parent: str | None, owner: str) -> Relayed:
    query = parse_qsl(request.query, keep_blank_values=False)
    page = _number(query, "page", 0, 0, 1_000_000)
    page_size = _number(query, "page_size", DEFAULT_PAGE_SIZES.get(kind, 100), 1, MAX_PAGE_SIZE)
    page_size = _number(query, "limit", page_size, 1, MAX_PAGE_SIZE)  # OpenAI clients' spelling
    after = next((value for name, value in query if name == "after"), None)  # OpenAI clients' cursor
    filters: dict[str, set[str]] = {}
    for name, value in query:
        if name in EXACT_FILTERS or name == "search":
            filters.setdefault(name, set()).add(value)
    with current().budgets.spending(request.caller, {}) as spending:
        ids = current().ledger.ids(owner, kind, parent)
        if after is not None:  # the items after that id (none if it is not the caller's): pages end
            ids = ids[ids.index(after) + 1 :] if after in ids else []
        if kind == "library":  # Mistral's library list has no pages: all of them
            page, page_size = 0, max(1, len(ids))
        if filters:
            items = [item for item in _fetch(request, kind, parent, ids) if _passes(item, filters)]
            total, shown = len(items), items[page * page_size : (page + 1) * page_size]
        else:
            total, shown = len(ids), _fetch(request, kind, parent, ids[page * page_size : (page + 1) * page_size])
        spending.settle(0)
    observability.log_keys(listed=len(shown), listed_total=total)
    body = shape(kind, shown, total, page, page_size)
    import json

    return Relayed(200, "application/json", json.dumps(body).encode(), dict(spending.headers))


def shape(kind: str, items: list[dict[str, Any]], total: int, page: int, page_size: int) -> Any:
    """Mistral's own list shape for the kind."""
    pages = math.ceil(total / page_size) if page_size else 0
    if kind in ("agent", "conversation"):
        return items
    if kind == "library":
        return {"data": items}
    if kind == "document":
        pagination = {
            "total_items": total,
            "total_pages": pages,
            "current_page": page,
            "page_size": page_size,
            "has_more": (page + 1) * page_size < total,
        }
        return {"pagination": pagination, "data": items}
    if kind == "voice":
        return {"items": items, "total": total, "page": page, "page_size": page_size, "total_pages": pages}
    return {"data": items, "object": "list", "total": total}


def _fetch(request: Forward, kind: str, parent: str | None, ids: list[str]) -> list[dict[str, Any]]:
    def get(rid: str) -> dict[str, Any] | None:
        relayed = relay.relay(relay.internal(request, "GET", ITEM_PATHS[kind].format(id=rid, parent=parent)))
        if relayed.status == 404:
            return None  # gone from the account: left out
        if relayed.status >= 400:
            raise UpstreamError("Mistral refused to read one of the caller's items.")
        return json_object(relayed)

    if not ids:
        return []
    with ThreadPoolExecutor(max_workers=min(len(ids), settings().batch_concurrency)) as pool:
        return [item for item in pool.map(get, ids) if item is not None]


def _passes(item: dict[str, Any], filters: dict[str, set[str]]) -> bool:
    for name, values in filters.items():
        if name == "search":
            text = str(item.get("filename") or item.get("name") or "").lower()
            if not any(value.lower() in text for value in values):
                return False
        elif name in item and str(item[name]) not in values:
            return False
    return True


def _number(query: list[tuple[str, str]], name: str, default: int, least: int, most: int) -> int:
    raw = next((value for key, value in query if key == name), None)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidRequest(f"{name} must be a whole number.", param=name) from None
    if not least <= value <= most:
        raise InvalidRequest(f"{name} must be between {least} and {most}.", param=name)
    return value
