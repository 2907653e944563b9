"""Spend per caller key, exact: what each "request served" line says, added up in the quota table.

The request functions write nothing for it: the line is the record. CloudWatch Logs delivers the served lines
(a subscription filter) to the spend function, which adds each line's fields (spend_batches.py: summed per
delivery, one transaction per chunk of sums, each chunk exactly once) to the item `spend#<key id>#<YYYY-MM-DD>#<model>`:
requests, cache hits (HIT and STALE), prompt and completion tokens Mistral billed, tokens served from the
cache, cost and cost saved (integer nano-USD, priced like the cost headers: at the model that answered),
fallbacks, errors (status >= 400) and 429s. Tokens come from the line's own fields, so `mistral-gateway keys
usage` agrees with the lines to the token. Items expire after SPEND_RETENTION_DAYS (the table's TTL
attribute). A hit served from the container's memory therefore makes no AWS call at all; what a delivery
costs, and what happens to one that cannot be applied, is in docs/decisions.md and docs/reliability.md.
Requests without a caller key (public routes) add nothing.

A batch (POST /v1/batch/chat/completions) is one line and one request; its items are billed one by one, each
at its own model: the batch's line carries its items' sums (`prompt_tokens`, `completion_tokens`,
`tokens_from_cache`, `cost_usd`) and, in `batch_usage`, each item's spend fields (batch_fields), which are
added to the item's model (its tokens, cost, cache hit and savings, fallback). The batch itself counts one
request (and an error if it failed as a whole) under the line's model ("-": a batch names none); its items
count no requests or errors of their own (an item's 4xx is in the batch's answer). So `keys usage` agrees
with what Mistral billed per model, and with the lines.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mistral_gateway.platform.economics import Prices

PREFIX = "spend#"
SPEND_RETENTION_DAYS = 400
NANO = 1_000_000_000
COUNTERS = (
    "requests",
    "cache_hits",
    "prompt_tokens",
    "completion_tokens",
    "saved_tokens",
    "cost_nusd",
    "saved_nusd",
    "fallbacks",
    "errors",
    "rate_limited",
)
SAVED_STATUSES = ("HIT", "STALE")


def item_key(caller: str, day: str, model: str) -> str:
    return f"{PREFIX}{caller}#{day}#{model}"


def counters(fields: dict[str, Any], prices: Prices) -> dict[str, int]:
    """What one served line adds: its tokens as written, its cost priced like the cost headers (`prices`)."""

    status = _int(fields.get("status"))
    cache = fields.get("cache")
    model = str(fields.get("model") or "")
    served_by = str(fields.get("served_by") or "")
    priced_at = served_by if served_by and ":" not in served_by else model  # a fallback: the model that answered
    billed = {
        "prompt_tokens": _int(fields.get("prompt_tokens")),
        "completion_tokens": _int(fields.get("completion_tokens")),
    }
    counts = {"requests": 1, **billed}
    if cache in SAVED_STATUSES:
        saved = {
            "prompt_tokens": _int(fields.get("prompt_tokens_from_cache")),
            "completion_tokens": _int(fields.get("completion_tokens_from_cache")),
        }
        counts["cache_hits"] = 1
        counts["saved_tokens"] = _int(fields.get("tokens_from_cache")) or sum(saved.values())
        counts["saved_nusd"] = round((prices.cost_usd(model, saved) or 0.0) * NANO)
    counts["cost_nusd"] = round((prices.cost_usd(priced_at, billed) or 0.0) * NANO) if any(billed.values()) else 0
    counts["fallbacks"] = 1 if fields.get("fallback_from") else 0
    counts["errors"] = 1 if status >= 400 else 0
    counts["rate_limited"] = 1 if status == 429 else 0
    return {name: value for name, value in counts.items() if value}


# What a batch item's line would have said about its spend (counters() reads these).
ITEM_FIELDS = (
    "status",
    "model",
    "served_by",
    "cache",
    "prompt_tokens",
    "completion_tokens",
    "prompt_tokens_from_cache",
    "completion_tokens_from_cache",
    "tokens_from_cache",
    "fallback_from",
)


# Counted for the batch's request (its line), not for its items: an item's own 4xx is in the batch's answer.
BATCH_OWN = ("requests", "errors", "rate_limited")


def batch_fields(items: list[dict[str, Any]]) -> dict[str, Any]:
    """The batch line's keys about its items (each item's log keys and status): their sums, and each item's
    spend fields in `batch_usage` (at most the batch's item limit, a few keys each)."""
    usage = [{name: item[name] for name in ITEM_FIELDS if item.get(name) not in (None, "", 0)} for item in items]
    sums = {
        name: sum(_int(item.get(name)) for item in usage)
        for name in ("prompt_tokens", "completion_tokens", "tokens_from_cache")
    }
    return {**{name: value for name, value in sums.items() if value}, "batch_usage": usage}


def rows(fields: dict[str, Any], prices: Prices) -> dict[str, dict[str, int]]:
    """What one served line adds, by model: its own counters, or for a batch its own request plus each item's
    counters at the item's model."""
    model = str(fields.get("model") or "-")[:200]
    items = fields.get("batch_usage")
    if not isinstance(items, list):
        return {model: counters(fields, prices)}
    added: dict[str, dict[str, int]] = {model: counters({"status": fields.get("status")}, prices)}
    for item in items:
        if not isinstance(item, dict):
            continue
        own = added.setdefault(str(item.get("model") or "-")[:200], {})
        for name, value in counters(item, prices).items():
            if name not in BATCH_OWN:
                own[name] = own.get(name, 0) + value
    return {name: counts for name, counts in added.items() if counts}


def line_fields(fields: dict[str, Any], prices: Prices) -> dict[str, float]:
    """What the served line adds about money (the dashboard's per-key row sums these): cost and cost saved."""
    counts: dict[str, int] = {}
    for added in rows(fields, prices).values():
        for name, value in added.items():
            counts[name] = counts.get(name, 0) + value
    extra = {}
    if counts.get("cost_nusd"):
        extra["cost_usd"] = counts["cost_nusd"] / NANO
    if counts.get("saved_nusd"):
        extra["saved_usd"] = counts["saved_nusd"] / NANO
    return extra


def _int(value: Any) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0
