"""The request flow of every endpoint: cache lookup, then (on a miss) validation, the upstream call, the store.

handler -> service -> (cache, upstream). Validation runs after the lookup on purpose: only validated
requests are ever stored, and the key is computed over the raw body without coercion, so a body that would
fail validation can never be a hit; meanwhile a hit never loads pydantic or the SDK.
"""

from __future__ import annotations

import base64
import json
import struct
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import cache
from typing import Any

from mistral_gateway import dialect, economics, observability, quota, sse
from mistral_gateway.cache import CachedAnswer, Entry, Lease, ResponseCache
from mistral_gateway.canonical import cache_key, canonical_chat
from mistral_gateway.config import settings
from mistral_gateway.deadline import Deadline
from mistral_gateway.errors import (
    GatewayError,
    InvalidRequest,
    RateLimited,
    RequestValidationFailed,
    ServiceUnavailable,
    UpstreamError,
    UpstreamTimeout,
)
from mistral_gateway.http import CacheControl
from mistral_gateway.observability import logger

JSON = "application/json"
EVENT_STREAM = "text/event-stream"
MODELS_TTL_SECONDS = 300


@dataclass(frozen=True)
class Answer:
    body: str
    cache_status: str  # HIT | MISS | BYPASS | STALE (| BATCH)
    content_type: str = JSON
    usage: dict[str, int] = field(default_factory=dict)
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)  # usage, cost or saving (economics.py), quota


@dataclass(frozen=True)
class Fetched:
    """What the upstream gave for a miss: the body to store and return, its usage, and whether to store it."""

    body: bytes
    usage: dict[str, int]
    complete: bool


@cache
def response_cache() -> ResponseCache:
    return ResponseCache(settings().table_name)


def cache_scope(caller: str | None) -> str:
    if settings().cache_scope == "shared":
        return "shared"
    return f"caller:{caller}" if caller else "anonymous"


def check_model(body: dict[str, Any]) -> None:
    allowed = settings().allowed_models
    model = body.get("model")
    if allowed and isinstance(model, str) and model not in allowed:
        raise InvalidRequest(
            f"Model {model!r} is not enabled on this gateway. Enabled: {', '.join(sorted(allowed))}.",
            param="model",
            code="model_not_allowed",
        )
    if isinstance(model, str):
        logger.append_keys(model=model)


# --- endpoints -------------------------------------------------------------------------------------------


def chat_completion(body: dict[str, Any], *, caller: str | None, control: CacheControl, deadline: Deadline) -> Answer:
    body = dialect.mistral_chat(body)
    return _completion("chat", "ChatCompletionRequest", "messages", body, caller, control, deadline)


def fim_completion(body: dict[str, Any], *, caller: str | None, control: CacheControl, deadline: Deadline) -> Answer:
    return _completion("fim", "FIMCompletionRequest", "prompt", body, caller, control, deadline)


def _completion(
    kind: str,
    request_model: str,
    prompt_field: str,
    body: dict[str, Any],
    caller: str | None,
    control: CacheControl,
    deadline: Deadline,
) -> Answer:
    """Chat and FIM: one cache entry per request, served plain or as an SSE replay."""
    check_model(body)

    def prepare() -> Fetch:
        request = _validate(request_model, body)
        _log_prompt(body.get(prompt_field))
        from mistral_gateway import upstream

        ask = upstream.chat if kind == "chat" else upstream.fim
        return lambda: _completed(ask(request.sdk_arguments(), deadline))

    answer = through_cache(kind, canonical_chat(body), caller, control, prepare, deadline, budget=body)
    answer = _priced(answer, body)
    return _as_stream(answer) if body.get("stream") is True else answer


def embeddings(body: dict[str, Any], *, caller: str | None, control: CacheControl, deadline: Deadline) -> Answer:
    check_model(body)
    canonical = {key: value for key, value in body.items() if value is not None}
    if isinstance(canonical.get("input"), str):
        canonical["input"] = [canonical["input"]]
    local_encoding = canonical.get("output_dtype", "float") == "float"
    if local_encoding and canonical.get("encoding_format") in ("float", "base64"):
        del canonical["encoding_format"]  # one float entry serves both encodings
    if isinstance(canonical.get("metadata"), dict):
        del canonical["metadata"]  # a label, not part of the answer

    def prepare() -> Fetch:
        request = _validate("EmbeddingRequest", body)
        from mistral_gateway import upstream

        def fetch() -> Fetched:
            fetched = upstream.embeddings(request.sdk_arguments(), deadline)
            return Fetched(fetched.body, fetched.usage, complete=bool(fetched.data.get("data")))

        return fetch

    answer = _priced(through_cache("embeddings", canonical, caller, control, prepare, deadline, budget=body), body)
    if local_encoding and body.get("encoding_format") == "base64":
        return _replace_body(answer, _base64_embeddings(answer.body))
    return answer


def list_models(*, caller: str | None, control: CacheControl, deadline: Deadline) -> Answer:
    """Mistral's model list (what the gateway's key can use), cached briefly, filtered by the allow-list."""

    def fetch() -> Fetched:
        from mistral_gateway import upstream

        fetched = upstream.models(deadline)
        return Fetched(fetched.body, {}, complete=isinstance(fetched.data.get("data"), list))

    shared = CacheControl(read=control.read, store=control.store, max_age=control.max_age or MODELS_TTL_SECONDS)
    answer = through_cache("models", {"path": "/v1/models"}, None, shared, lambda: fetch, deadline, scope="shared")
    allowed = settings().allowed_models
    if not allowed:
        return answer
    listing = json.loads(answer.body)
    listing["data"] = [card for card in listing.get("data", []) if card.get("id") in allowed]
    return _replace_body(answer, json.dumps(listing))


def batch_chat(body: dict[str, Any], *, caller: str | None, control: CacheControl, deadline: Deadline) -> Answer:
    """Up to BATCH_MAX_ITEMS chat requests, answered in order, each with its own status and cache status."""
    items = body.get("requests")
    limit = settings().batch_max_items
    if not isinstance(items, list) or not items:
        raise InvalidRequest("`requests` must be a non-empty list of chat completion requests.", param="requests")
    if len(items) > limit:
        raise InvalidRequest(f"A batch holds at most {limit} requests; got {len(items)}.", param="requests")

    def one(index: int, item: Any) -> dict[str, Any]:
        try:
            if not isinstance(item, dict):
                raise InvalidRequest("Each batch item must be a JSON object.", param=f"requests.{index}")
            if item.get("stream") is True:
                raise InvalidRequest("Streaming is not available inside a batch.", param=f"requests.{index}.stream")
            answer = chat_completion(item, caller=caller, control=control, deadline=deadline)
            return {"index": index, "status": 200, "cache": answer.cache_status, "body": json.loads(answer.body)}
        except GatewayError as error:
            return {"index": index, "status": error.status, "cache": None, "body": error.body()}

    with ThreadPoolExecutor(max_workers=min(settings().batch_concurrency, len(items))) as pool:
        results = list(pool.map(one, range(len(items)), items))
    hits = sum(1 for result in results if result["cache"] == "HIT")
    logger.append_keys(cache="BATCH", batch_items=len(results), batch_hits=hits)
    summary = {"object": "batch.chat.completion", "data": results}
    return Answer(body=json.dumps(summary), cache_status="BATCH")


# --- the cache flow shared by every endpoint ---------------------------------------------------------------

# What an endpoint hands the flow: `prepare()` validates the request (raising a 4xx) and returns the upstream
# call; validation happens only on a miss, and before any write to the cache.
Fetch = Callable[[], Fetched]
# Failures of Mistral (not of the request) after which an expired answer is better than an error.
STALE_ON = (UpstreamError, UpstreamTimeout, RateLimited, ServiceUnavailable)


def through_cache(
    kind: str,
    canonical: Any,
    caller: str | None,
    control: CacheControl,
    prepare: Callable[[], Fetch],
    deadline: Deadline,
    *,
    scope: str | None = None,
    budget: dict[str, Any] | None = None,
) -> Answer:
    """The answer from the cache, or from Mistral (then stored). `budget` is the request body whose cost
    counts against the caller's quota (None: not budgeted); it is estimated only when a miss spends it."""
    config = settings()
    key = cache_key(kind, scope or cache_scope(caller), canonical)
    cache = response_cache()
    ttl = control.max_age if control.max_age is not None else config.cache_ttl_seconds
    stale: CachedAnswer | None = None
    entry: Entry | None = None
    if control.read:
        entry = cache.read(key)
        if entry is not None and entry.answer is not None:
            if _usable(entry.answer, control):
                return _budgeted_hit(_hit(entry.answer), caller, budget)
            stale = entry.answer

    fetch = prepare()
    lease: Lease | None = None
    if control.read and control.store and ttl > 0 and config.single_flight_wait_ms > 0:
        lease, coalesced = _single_flight(cache, key, entry, control, deadline)
        if coalesced is not None:
            return _budgeted_hit(coalesced, caller, budget)

    status = "BYPASS" if control.bypassed else "MISS"
    logger.append_keys(cache=status)
    observability.count(observability.CACHE_BYPASS if control.bypassed else observability.CACHE_MISS)
    stored = False
    reservation: quota.Reservation | None = None
    try:
        if budget is not None and quota.enabled():
            reservation = quota.reserve(caller, quota.estimate_tokens(budget))  # 429 when the budget is spent
        try:
            fetched = fetch()
        except BaseException as error:
            quota.release(reservation)
            if isinstance(error, STALE_ON) and stale is not None and _within_stale_window(stale):
                return _stale(stale, error)
            raise
        quota.settle(reservation, sum(_token_counts(fetched.usage).values()))
        _account(fetched)
        if control.store and fetched.complete and ttl > 0:
            stored = cache.put(key, fetched.body, ttl_seconds=ttl, **_token_counts(fetched.usage))
    finally:
        if lease is not None and not stored:
            cache.release(lease)  # waiters stop waiting and ask Mistral themselves
    headers = reservation.headers if reservation else {}
    return Answer(body=fetched.body.decode(), cache_status=status, usage=fetched.usage, headers=headers)


def _budgeted_hit(answer: Answer, caller: str | None, budget: dict[str, Any] | None) -> Answer:
    """Hits are free by default (RateLimit headers only); with QUOTA_COUNT_HITS they spend their tokens."""
    if budget is None or not quota.enabled():
        return answer
    if settings().quota_count_hits:
        reservation = quota.reserve(caller, sum(answer.usage.values()))
        headers = reservation.headers if reservation else {}
    else:
        headers = quota.peek(caller)
    return replace(answer, headers={**answer.headers, **headers})


def _single_flight(
    cache: ResponseCache, key: str, entry: Entry | None, control: CacheControl, deadline: Deadline
) -> tuple[Lease | None, Answer | None]:
    """Become the one caller that asks Mistral (a lease), or get the answer another caller fetched.

    (None, None) means: ask Mistral without a lease (the cache is failing, or the other caller gave up).
    """
    blocked = entry
    if entry is None or not entry.leased(time.time()):
        lease, blocked = cache.claim(key, lease_seconds=deadline.remaining_ms() / 1000)
        if lease is not None or blocked is None:
            return lease, None
    if blocked is None:
        return None, None
    if blocked.answer is not None and _usable(blocked.answer, control):
        return None, _hit(blocked.answer)  # it landed between our read and our claim
    if not blocked.leased(time.time()):
        return None, None
    return None, _wait_for_leader(cache, key, control, deadline)


def _wait_for_leader(cache: ResponseCache, key: str, control: CacheControl, deadline: Deadline) -> Answer | None:
    """Poll (consistent reads, backing off) for the leader's answer; None when it fails or takes too long."""
    budget_ms = min(settings().single_flight_wait_ms, deadline.remaining_ms() / 2)
    give_up = time.monotonic() + budget_ms / 1000
    pause = 0.02
    observability.count(observability.SINGLE_FLIGHT_WAITS)
    while time.monotonic() + pause < give_up:
        time.sleep(pause)
        pause = min(pause * 1.5, 0.25)
        entry = cache.read(key, consistent=True)
        if entry is None:
            return None
        if entry.answer is not None and _usable(entry.answer, control):
            logger.append_keys(single_flight="waited")
            return _hit(entry.answer)
        if not entry.leased(time.time()):
            return None  # the leader failed (or stored nothing): ask Mistral ourselves
    logger.info("single-flight wait timed out; calling Mistral", extra={"waited_ms": round(budget_ms)})
    return None


def _account(fetched: Fetched) -> None:
    usage = fetched.usage
    if usage:
        observability.count(observability.PROMPT_TOKENS, usage["prompt_tokens"])
        observability.count(observability.COMPLETION_TOKENS, usage["completion_tokens"])
        logger.append_keys(**usage)
    if settings().log_prompts:
        logger.info("answer (LOG_PROMPTS is on)", extra={"answer": fetched.body.decode(errors="replace")[:20_000]})


def _usable(cached: CachedAnswer, control: CacheControl) -> bool:
    now = time.time()
    if not cached.is_fresh(now):
        return False
    return control.max_age is None or now - cached.created_at <= control.max_age


def _within_stale_window(cached: CachedAnswer) -> bool:
    window = settings().stale_if_error_seconds
    return window > 0 and time.time() <= cached.fresh_until + window


def _stale(cached: CachedAnswer, error: GatewayError) -> Answer:
    logger.warning(
        "Mistral failed; serving an expired answer (stale-if-error)",
        extra={"error_type": error.error_type, "error_status": error.status, "stale_seconds": _age(cached)},
    )
    logger.append_keys(cache="STALE")
    observability.count(observability.CACHE_STALE)
    usage = {"prompt_tokens": cached.prompt_tokens, "completion_tokens": cached.completion_tokens}
    return Answer(body=cached.body.decode(), cache_status="STALE", usage=usage)


def _age(cached: CachedAnswer) -> int:
    return int(time.time() - cached.fresh_until)


def _hit(cached: CachedAnswer) -> Answer:
    tokens = cached.prompt_tokens + cached.completion_tokens
    logger.append_keys(cache="HIT", tokens_from_cache=tokens)
    observability.count(observability.CACHE_HIT)
    observability.count(observability.TOKENS_SERVED_FROM_CACHE, tokens)
    usage = {"prompt_tokens": cached.prompt_tokens, "completion_tokens": cached.completion_tokens}
    return Answer(body=cached.body.decode(), cache_status="HIT", usage=usage)


def _token_counts(usage: dict[str, int]) -> dict[str, int]:
    return {"prompt_tokens": usage.get("prompt_tokens", 0), "completion_tokens": usage.get("completion_tokens", 0)}


def _completed(fetched: Any) -> Fetched:
    return Fetched(fetched.body, fetched.usage, complete=is_complete(fetched.data))


def is_complete(data: dict[str, Any]) -> bool:
    """A whole, successful answer: every choice finished for a normal reason."""
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices:
        return False
    return all(isinstance(choice, dict) and choice.get("finish_reason") in sse.FINISHED for choice in choices)


def _as_stream(answer: Answer) -> Answer:
    return replace(answer, body=sse.to_events(json.loads(answer.body)), content_type=EVENT_STREAM)


def _replace_body(answer: Answer, body: str) -> Answer:
    return replace(answer, body=body)


def _priced(answer: Answer, body: dict[str, Any]) -> Answer:
    extra = economics.headers_and_metrics(body.get("model"), answer.cache_status, answer.usage)
    return replace(answer, headers={**answer.headers, **extra})


def _base64_embeddings(body: str) -> str:
    """What the OpenAI SDK asks for by default: each vector as base64 of little-endian float32."""
    data = json.loads(body)
    for item in data.get("data", []):
        vector = item.get("embedding")
        if isinstance(vector, list):
            item["embedding"] = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
    return json.dumps(data)


def _log_prompt(prompt: Any) -> None:
    if settings().log_prompts:
        logger.info("prompt (LOG_PROMPTS is on)", extra={"prompt": prompt})


# --- validation --------------------------------------------------------------------------------------------


def _validate(model_name: str, body: dict[str, Any]) -> Any:
    from pydantic import ValidationError

    from mistral_gateway import models

    try:
        return getattr(models, model_name).model_validate(body)
    except ValidationError as error:
        raise validation_failed(error) from None


def validation_failed(error: Any) -> RequestValidationFailed:
    """A pydantic ValidationError as Mistral's 422: a readable message plus the `detail` list."""
    detail = [
        {"loc": ["body", *item["loc"]], "msg": item["msg"], "type": item["type"]}
        for item in error.errors(include_url=False, include_input=False)
    ]
    parts = [f"{'.'.join(str(p) for p in item['loc'][1:])}: {item['msg']}" for item in detail[:5]]
    more = f" (and {len(detail) - 5} more)" if len(detail) > 5 else ""
    first = ".".join(str(p) for p in detail[0]["loc"][1:]) if detail else None
    return RequestValidationFailed("Invalid request: " + "; ".join(parts) + more, param=first, detail=detail)
