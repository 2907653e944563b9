"""Mistral batch jobs settled against their owner's budget, at Mistral's batch price (half the list price).

A job's tokens are known only when it ends, in its output file: one line per request, each with the chat
answer's `usage`. The first time the job's owner reads a finished job through the gateway, the gateway reads
the output file once, adds its tokens to the owner's token budgets (quota.Budgets.charge: spent is spent,
even over the limit; the next request then sees the budget as spent), and emits the cost metric at half the
list price. A marker in the ledger (`settled#batch_job#<id>`, a conditional PutItem) makes that happen once
across containers. Creating a job is a budgeted request like any other, so a caller whose budget is spent
cannot create jobs (429 `quota_exceeded`).
"""

from __future__ import annotations

import json
from typing import Any

from mistral_gateway.container import current
from mistral_gateway.flow import relay
from mistral_gateway.flow.relay import Forward
from mistral_gateway.platform import economics, observability
from mistral_gateway.platform.observability import logger

BATCH_PRICE_FACTOR = 0.5  # Mistral's batch API costs half the price of the same requests one by one
FINISHED = frozenset({"SUCCESS", "FAILED", "TIMEOUT_EXCEEDED", "CANCELLED"})


def settle_finished(request: Forward, owner: str, job: dict[str, Any]) -> dict[str, str]:
    """Charge a finished job's tokens once; the usage and batch-priced cost headers of that first read."""
    job_id, output = job.get("id"), job.get("output_file")
    if job.get("status") not in FINISHED or not isinstance(job_id, str) or not isinstance(output, str):
        return {}
    content = relay.relay(relay.internal(request, "GET", f"files/{output}/content"))
    if content.status != 200:
        return {}
    usage = usage_of(content.body)
    if not current().ledger.claim(owner, "settled", f"batch_job#{job_id}"):
        return {}  # settled already (by an earlier read, in any container)
    return charge(request.caller, job.get("model"), usage)


def charge(caller: str | None, model: Any, usage: dict[str, int]) -> dict[str, str]:
    tokens = usage["prompt_tokens"] + usage["completion_tokens"]
    current().budgets.charge(caller, tokens)
    model_name = model if isinstance(model, str) else None
    headers = {
        "X-Usage-Prompt-Tokens": str(usage["prompt_tokens"]),
        "X-Usage-Completion-Tokens": str(usage["completion_tokens"]),
    }
    prices = current().prices
    cost = prices.cost_usd(model_name, usage)
    if cost is not None:
        cost *= BATCH_PRICE_FACTOR
        headers["X-Estimated-Cost-USD"] = f"{cost:.8f}"
        dimension = prices.dimension(model_name)
        observability.count_by(observability.ESTIMATED_COST, "model", dimension, round(cost, 8), economics.DOLLARS)
    observability.log_keys(batch_settled_tokens=tokens)
    logger.info("batch job settled", extra={"tokens": tokens})
    return headers


def usage_of(jsonl: bytes) -> dict[str, int]:
    """The tokens of every answered line of a batch output file."""
    usage = {"prompt_tokens": 0, "completion_tokens": 0}
    for line in jsonl.splitlines():
        try:
            item = json.loads(line)
            counted = item["response"]["body"]["usage"]
        except (ValueError, KeyError, TypeError):
            continue
        for key in usage:
            value = counted.get(key) if isinstance(counted, dict) else None
            usage[key] += value if isinstance(value, int) and value > 0 else 0
    return usage
