"""What an answer cost, or — when it came from the cache — what it saved, in tokens and estimated dollars.

Every answer carries its token usage in headers; a MISS adds its estimated cost, a HIT or STALE what it
saved. Metrics count tokens served from the cache, estimated cost and cost saved per model, with the model
as the only extra dimension (models outside the price table are reported as "other", so a caller cannot
create dimensions at will). Prices are list prices per million tokens; the operator overrides or extends
them with the ModelPrices parameter (MODEL_PRICES, JSON: {"model": [input, output], ...}): config.py.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from mistral_gateway import observability
from mistral_gateway.container import current

# USD per million tokens (input, output): Mistral's public list prices as of 2026-11; override by parameter.
LIST_PRICES: dict[str, tuple[float, float]] = {
    "mistral-small-latest": (0.10, 0.30),
    "mistral-medium-latest": (0.40, 2.00),
    "mistral-large-latest": (0.50, 1.50),
    "magistral-medium-latest": (2.00, 5.00),
    "magistral-small-latest": (0.50, 1.50),
    "codestral-latest": (0.30, 0.90),
    "devstral-medium-latest": (0.40, 2.00),
    "devstral-small-latest": (0.10, 0.30),
    "ministral-8b-latest": (0.10, 0.10),
    "ministral-3b-latest": (0.04, 0.04),
    "pixtral-large-latest": (2.00, 6.00),
    "open-mistral-nemo": (0.15, 0.15),
    "mistral-embed": (0.10, 0.0),
    "codestral-embed": (0.15, 0.0),
}
SAVED_STATUSES = frozenset({"HIT", "STALE"})
DOLLARS = MetricUnit.NoUnit  # CloudWatch has no currency unit; the metric names say USD


def prices() -> dict[str, tuple[float, float]]:
    """List prices with the operator's ModelPrices over them (the container keeps the merged table)."""
    return current().prices


def cost_usd(model: str | None, usage: dict[str, int]) -> float | None:
    price = prices().get(model or "")
    if price is None:
        return None
    return (usage.get("prompt_tokens", 0) * price[0] + usage.get("completion_tokens", 0) * price[1]) / 1_000_000


def headers_and_metrics(model: Any, cache_status: str, usage: dict[str, int]) -> dict[str, str]:
    """Headers for one answer (and its cost metrics). Batches and errors carry none."""
    if not usage:
        return {}
    model_name = model if isinstance(model, str) else None
    tokens = usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0)
    headers = {
        "X-Usage-Prompt-Tokens": str(usage.get("prompt_tokens", 0)),
        "X-Usage-Completion-Tokens": str(usage.get("completion_tokens", 0)),
    }
    cost = cost_usd(model_name, usage)
    dimension = model_name if model_name in prices() else "other"
    if cache_status in SAVED_STATUSES:
        headers["X-Cache-Saved-Tokens"] = str(tokens)
        if cost is not None:
            headers["X-Cache-Saved-Cost-USD"] = f"{cost:.8f}"
            observability.count_by(observability.ESTIMATED_COST_SAVED, "model", dimension, round(cost, 8), DOLLARS)
        observability.count_by(observability.TOKENS_SAVED_BY_MODEL, "model", dimension, tokens)
    else:
        if cost is not None:
            headers["X-Estimated-Cost-USD"] = f"{cost:.8f}"
            observability.count_by(observability.ESTIMATED_COST, "model", dimension, round(cost, 8), DOLLARS)
    return headers
