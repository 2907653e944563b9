"""What an answer cost, or — when it came from the cache — what it saved, in tokens and estimated dollars.

Every answer carries its token usage in headers; a MISS adds its estimated cost, a HIT or STALE what it
saved. Metrics count tokens served from the cache, estimated cost and cost saved per model, with the model
as the only extra dimension (models outside the price table are reported as "other", so a caller cannot
create dimensions at will). Prices are list prices per million tokens; the operator overrides or extends
them with the ModelPrices parameter (MODEL_PRICES, JSON: {"model": [input, output], ...}): config.py.

Prompt tokens Mistral served from its prompt cache (`usage.prompt_tokens_details.cached_tokens` on chat and
FIM, `usage.input_tokens_details.cached_tokens` on responses) are billed at CACHED_PROMPT_RATE of the input
price: the cost headers and metrics price them so, and `X-Usage-Cached-Prompt-Tokens` says how many there were.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from mistral_gateway.platform import observability

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
# Mistral bills prompt tokens read from its prompt cache at 10 % of the input price.
CACHED_PROMPT_RATE = 0.10
DOLLARS = MetricUnit.NoUnit  # CloudWatch has no currency unit; the metric names say USD


def token_usage(usage: Any) -> dict[str, int]:
    """Mistral's `usage` object as the gateway counts it: prompt and completion tokens, plus `cached_tokens`
    (prompt tokens served from Mistral's prompt cache) when there were any. Chat-shaped (`prompt_tokens`) and
    Responses-shaped (`input_tokens`) usage both count; anything else counts 0."""
    if not isinstance(usage, dict):
        return {}
    responses = "input_tokens" in usage and "prompt_tokens" not in usage
    prompt = _whole(usage.get("input_tokens" if responses else "prompt_tokens"))
    completion = _whole(usage.get("output_tokens" if responses else "completion_tokens"))
    details = usage.get("input_tokens_details" if responses else "prompt_tokens_details")
    cached = _whole(details.get("cached_tokens")) if isinstance(details, dict) else 0
    counts = {"prompt_tokens": prompt, "completion_tokens": completion}
    if cached:
        counts["cached_tokens"] = min(cached, prompt)
    return counts


def _whole(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


class Prices(dict[str, tuple[float, float]]):
    """USD per million tokens (input, output) by model: LIST_PRICES with the operator's ModelPrices over them.
    The container builds one (container.py) and hands it to whoever prices an answer."""

    def cost_usd(self, model: str | None, usage: dict[str, int]) -> float | None:
        price = self.get(model or "")
        if price is None:
            return None
        cached = min(usage.get("cached_tokens", 0), usage.get("prompt_tokens", 0))
        prompt = (usage.get("prompt_tokens", 0) - cached + cached * CACHED_PROMPT_RATE) * price[0]
        return (prompt + usage.get("completion_tokens", 0) * price[1]) / 1_000_000

    def dimension(self, model: str | None) -> str:
        """The metric dimension of a model: its name when it is priced, else "other" (bounded cardinality)."""
        return model if model and model in self else "other"

    def headers_and_metrics(self, model: Any, cache_status: str, usage: dict[str, int]) -> dict[str, str]:
        """Headers for one answer (and its cost metrics). Batches and errors carry none."""
        if not usage:
            return {}
        model_name = model if isinstance(model, str) else None
        tokens = usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0)
        headers = {
            "X-Usage-Prompt-Tokens": str(usage.get("prompt_tokens", 0)),
            "X-Usage-Completion-Tokens": str(usage.get("completion_tokens", 0)),
        }
        if usage.get("cached_tokens"):
            headers["X-Usage-Cached-Prompt-Tokens"] = str(usage["cached_tokens"])
        cost = self.cost_usd(model_name, usage)
        dimension = self.dimension(model_name)
        if cache_status in SAVED_STATUSES:
            headers["X-Cache-Saved-Tokens"] = str(tokens)
            if cost is not None:
                headers["X-Cache-Saved-Cost-USD"] = f"{cost:.8f}"
                observability.count_by(observability.ESTIMATED_COST_SAVED, "model", dimension, round(cost, 8), DOLLARS)
            observability.count_by(observability.TOKENS_SAVED_BY_MODEL, "model", dimension, tokens)
        else:
            if usage.get("cached_tokens"):
                observability.count(observability.CACHED_PROMPT_TOKENS, usage["cached_tokens"])
            if cost is not None:
                headers["X-Estimated-Cost-USD"] = f"{cost:.8f}"
                observability.count_by(observability.ESTIMATED_COST, "model", dimension, round(cost, 8), DOLLARS)
        return headers
