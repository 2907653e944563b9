"""Chat and FIM completions (`POST /v1/chat/completions`, `/v1/fim/completions`), plain or replayed as SSE, and
the gateway's own batch of chat requests (`POST /v1/batch/chat/completions`).

One request, top to bottom: checks.py (model, validation, dialect) -> answers.through_cache (memory, table,
single-flight) -> on a miss fallback.first_answer -> upstream/mistral.py -> stored, answers.priced.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from mistral_gateway.container import current, settings
from mistral_gateway.flow import answers, checks
from mistral_gateway.flow.answers import Answer, Fetch, Fetched
from mistral_gateway.platform import after_response, observability
from mistral_gateway.platform.deadline import Deadline
from mistral_gateway.platform.errors import GatewayError, InvalidRequest
from mistral_gateway.platform.observability import logger
from mistral_gateway.requests import limits
from mistral_gateway.requests.canonical import canonical_chat
from mistral_gateway.requests.http import CacheControl


def chat_completion(
    body: dict[str, Any], *, caller: str | None, control: CacheControl, deadline: Deadline, fallbacks: bool = True
) -> Answer:
    return _completion("chat", checks.in_mistral_dialect(body), caller, control, deadline, fallbacks)


def fim_completion(
    body: dict[str, Any], *, caller: str | None, control: CacheControl, deadline: Deadline, fallbacks: bool = True
) -> Answer:
    return _completion("fim", body, caller, control, deadline, fallbacks)


def _completion(
    route: str,
    body: dict[str, Any],
    caller: str | None,
    control: CacheControl,
    deadline: Deadline,
    fallbacks: bool,
) -> Answer:
    """Chat and FIM: one cache entry per request, served plain or as an SSE replay. The request goes by one name
    per form: `body` (as sent, in Mistral's dialect), `validated` (pydantic's, None where admission vouched for
    the body), `canonical` (what the cache key is computed over), `arguments` (the SDK's, sent upstream)."""
    key_form, validated = checks.admitted_completion(route, body)
    canonical = canonical_chat(key_form)
    checks.check_fine_tuned(body, caller)

    def prepare() -> Fetch:
        from mistral_gateway.flow import fallback
        from mistral_gateway.requests import prompt_cache
        from mistral_gateway.upstream import mistral as upstream

        arguments = prompt_cache.namespaced(checks.upstream_arguments(route, body, validated), caller)
        ask = upstream.chat if route == "chat" else upstream.fim

        def fetch() -> Fetched:
            from mistral_gateway.policies import quota

            cap = quota.completion_cap()  # the key's token budget caps what Mistral may write (quota.py)
            sent = arguments if cap is None else {**arguments, "max_tokens": cap}
            fetched, served = fallback.first_answer(
                sent["model"],
                lambda target: ask(
                    *current().upstream_and_sdk(target.upstream), {**sent, "model": target.model}, deadline
                ),
                deadline,
                enabled=fallbacks,
            )
            # Only what the requested model answered is ever stored (fallback.py); never an answer the budget's
            # cap may have cut short: it is not the answer to the request as sent.
            complete = (
                answers.is_complete(fetched.data) and not served.fell_back and not quota.cut_at_cap(fetched.data, cap)
            )
            return Fetched(fetched.body, fetched.usage, complete, served)

        return fetch

    answer = answers.through_cache(route, canonical, caller, control, prepare, deadline, charged=body, cappable=True)
    answer = answers.priced(answer, body)
    return answers.as_stream(answer) if body.get("stream") is True else answer


def batch_chat(
    body: dict[str, Any], *, caller: str | None, control: CacheControl, deadline: Deadline, fallbacks: bool = True
) -> Answer:
    """Up to BATCH_MAX_ITEMS chat requests, answered in order, each with its own status and cache status."""
    items = body.get("requests")
    limit = settings().batch_max_items
    if not isinstance(items, list) or not items:
        raise InvalidRequest("`requests` must be a non-empty list of chat completion requests.", param="requests")
    if len(items) > limit:
        raise InvalidRequest(f"A batch holds at most {limit} requests; got {len(items)}.", param="requests")

    # Each item logs in a copy of the request's context, taken here (worker threads start with none): its keys
    # (model, cache status, tokens) reach neither the other items' lines nor the request's.
    contexts = [observability.item_context() for _ in items]
    refused_items = [  # before any upstream call
        contexts[index].run(_refused_batch_item, index, item) for index, item in enumerate(items)
    ]

    def one(index: int, item: Any) -> dict[str, Any]:
        if (refused := refused_items[index]) is not None:
            return refused
        try:
            # Stored before the batch answers: an identical item waits on this one's lease for its stored answer.
            with after_response.at_once():
                answer = chat_completion(item, caller=caller, control=control, deadline=deadline, fallbacks=fallbacks)
            return {"index": index, "status": 200, "cache": answer.cache_status, "body": json.loads(answer.body)}
        except GatewayError as error:
            return {"index": index, "status": error.status, "cache": None, "body": error.body()}

    with ThreadPoolExecutor(max_workers=min(settings().batch_concurrency, len(items))) as pool:
        results = list(pool.map(lambda index, item: contexts[index].run(one, index, item), range(len(items)), items))
    from mistral_gateway.policies import spend

    hits = sum(1 for result in results if result["cache"] == "HIT")
    # Each item's keys (its model, cache status, tokens) as its own line would have them: the batch line carries
    # their sums and each item's spend fields, which spend.py adds to the item's model.
    items_logged = [
        {**contexts[index].run(logger.thread_safe_get_current_keys), "status": result["status"]}
        for index, result in enumerate(results)
    ]
    observability.log_keys(cache="BATCH", batch_items=len(results), batch_hits=hits, **spend.batch_fields(items_logged))
    summary = {"object": "batch.chat.completion", "data": results}
    return Answer(body=json.dumps(summary), cache_status="BATCH")


def _refused_batch_item(index: int, item: Any) -> dict[str, Any] | None:
    """The item's own 4xx result if it could not be answered alone, else None."""
    try:
        if not isinstance(item, dict):
            raise InvalidRequest("Each batch item must be a JSON object.", param=f"requests.{index}")
        if item.get("stream") is True:
            raise InvalidRequest("Streaming is not available inside a batch.", param=f"requests.{index}.stream")
        limits.check(item, at=f"requests.{index}")
        body = checks.in_mistral_dialect(item)
        _, validated = checks.admitted_completion("chat", body)
        if validated is not None:  # what admission.py vouches for is also what the SDK accepts
            from mistral_gateway.upstream import mistral as upstream

            upstream.preflight("chat", validated.sdk_arguments())
    except GatewayError as error:
        return {"index": index, "status": error.status, "cache": None, "body": error.body()}
    return None
