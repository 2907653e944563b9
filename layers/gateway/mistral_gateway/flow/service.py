"""The request flow of every endpoint: validation, cache lookup, then (on a miss) the upstream call, the store.

handler -> service -> (cache, upstream). Every request is validated before the lookup and the key is
computed over its validated form, so a hit is only served to a request that would pass validation, and
`1.0` / `1` share an entry. The simple requests admission.py vouches for skip pydantic until a miss, so
their hits still never load pydantic or the SDK.
"""

from __future__ import annotations

import base64
import json
import struct
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from mistral_gateway.container import current, settings
from mistral_gateway.platform import observability
from mistral_gateway.platform.deadline import Deadline
from mistral_gateway.platform.errors import (
    GatewayError,
    InvalidRequest,
    NotFound,
    RateLimited,
    RequestValidationFailed,
    ServiceUnavailable,
    UpstreamError,
    UpstreamTimeout,
)
from mistral_gateway.platform.observability import logger
from mistral_gateway.policies import key_policy, singleflight
from mistral_gateway.policies.cache import CachedAnswer, Claim, Entry
from mistral_gateway.requests import admission, dialect, limits
from mistral_gateway.requests.canonical import cache_key, canonical_chat
from mistral_gateway.requests.http import CacheControl
from mistral_gateway.upstream import sse

if TYPE_CHECKING:
    from mistral_gateway.flow.fallback import Served  # loaded on a miss only

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
    events: bytes | None = None  # a cached stream's original SSE events (replayed to streamed requests)
    model: str | None = None  # the model that answered, when a fallback did (fallback.py); priced by it


@dataclass(frozen=True)
class Fetched:
    """What the upstream gave for a miss: the body to store and return, its usage, and whether to store it."""

    body: bytes
    usage: dict[str, int]
    complete: bool
    served: Served | None = None  # who answered (None: not a completion)


def cache_scope(caller: str | None) -> str:
    if settings().cache_scope == "shared":
        return "shared"
    return f"caller:{caller}" if caller else "anonymous"


def check_model(body: dict[str, Any]) -> None:
    allowed = settings().allowed_models
    model = body.get("model")
    if allowed and isinstance(model, str) and model not in allowed:
        raise InvalidRequest(
            f"Model {observability.bounded(model)!r} is not enabled on this gateway. "
            f"Enabled: {', '.join(sorted(allowed))}.",
            param="model",
            code="model_not_allowed",
        )
    if isinstance(model, str):
        observability.log_keys(model=observability.bounded(model))
        key_policy.check(model)  # the caller key's own model list (403)


def check_fine_tuned(body: dict[str, Any], caller: str | None) -> None:
    """A fine-tuned model (`ft:...`) must be one the caller's own job made (AccountRoutes=owned; owned.py)."""
    model = body.get("model")
    if isinstance(model, str) and model.startswith("ft:"):
        from mistral_gateway.flow.account import owned

        owned.check_fine_tuned_model(body, caller)


# --- endpoints -------------------------------------------------------------------------------------------


def chat_completion(
    body: dict[str, Any], *, caller: str | None, control: CacheControl, deadline: Deadline, fallbacks: bool = True
) -> Answer:
    body = in_mistral_dialect(body)
    return _completion("chat", body, caller, control, deadline, fallbacks)


def fim_completion(
    body: dict[str, Any], *, caller: str | None, control: CacheControl, deadline: Deadline, fallbacks: bool = True
) -> Answer:
    return _completion("fim", body, caller, control, deadline, fallbacks)


# Chat and FIM: the request model that validates each, and the field holding its prompt.
COMPLETIONS = {"chat": ("ChatCompletionRequest", "messages"), "fim": ("FIMCompletionRequest", "prompt")}


def admitted_completion(route: str, body: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """A chat or FIM body checked before the lookup (plain or streamed): see `admitted`."""
    check_model(body)
    return admitted(COMPLETIONS[route][0], body)


def upstream_arguments(route: str, body: dict[str, Any], validated: Any) -> dict[str, Any]:
    """For a chat or FIM miss: validation finished (where admission.py vouched for the body), the request
    checked against the SDK before anything is written, the prompt logged when asked; the SDK's arguments."""
    from mistral_gateway.upstream import mistral as upstream

    model_name, prompt_field = COMPLETIONS[route]
    arguments: dict[str, Any] = (validated or validate(model_name, body)).sdk_arguments()
    upstream.preflight(route, arguments)
    log_prompt(body.get(prompt_field))
    return arguments


def _completion(
    route: str,
    body: dict[str, Any],
    caller: str | None,
    control: CacheControl,
    deadline: Deadline,
    fallbacks: bool,
) -> Answer:
    """Chat and FIM: one cache entry per request, served plain or as an SSE replay."""
    form, validated = admitted_completion(route, body)
    check_fine_tuned(body, caller)

    def prepare() -> Fetch:
        from mistral_gateway.flow import fallback
        from mistral_gateway.requests import prompt_cache
        from mistral_gateway.upstream import mistral as upstream

        arguments = prompt_cache.namespaced(upstream_arguments(route, body, validated), caller)
        ask = upstream.chat if route == "chat" else upstream.fim

        def fetch() -> Fetched:
            from mistral_gateway.policies import quota

            cap = quota.completion_cap()  # the key's token budget caps what Mistral may write (quota.py)
            capped = arguments if cap is None else {**arguments, "max_tokens": cap}
            fetched, served = fallback.first_answer(
                capped["model"],
                lambda target: ask(
                    *current().upstream_and_sdk(target.upstream), {**capped, "model": target.model}, deadline
                ),
                deadline,
                enabled=fallbacks,
            )
            # Only what the requested model answered is ever stored (fallback.py); never an answer the budget's
            # cap may have cut short: it is not the answer to the request as sent.
            complete = is_complete(fetched.data) and not served.fell_back and not quota.cut_at_cap(fetched.data, cap)
            return Fetched(fetched.body, fetched.usage, complete, served)

        return fetch

    answer = through_cache(route, canonical_chat(form), caller, control, prepare, deadline, charged=body, cappable=True)
    answer = priced(answer, body)
    return as_stream(answer) if body.get("stream") is True else answer


def embeddings(body: dict[str, Any], *, caller: str | None, control: CacheControl, deadline: Deadline) -> Answer:
    check_model(body)
    check_fine_tuned(body, caller)
    form, validated = admitted("EmbeddingRequest", body)
    canonical = dict(form)
    if isinstance(canonical.get("input"), str):
        canonical["input"] = [canonical["input"]]
    local_encoding = canonical.get("output_dtype", "float") == "float"
    if local_encoding and canonical.get("encoding_format") in ("float", "base64"):
        del canonical["encoding_format"]  # one float entry serves both encodings
    if isinstance(canonical.get("metadata"), dict):
        del canonical["metadata"]  # a label, not part of the answer

    def prepare() -> Fetch:
        request = validated or validate("EmbeddingRequest", body)
        from mistral_gateway.upstream import mistral as upstream

        upstream.preflight("embeddings", request.sdk_arguments())

        def fetch() -> Fetched:
            fetched = upstream.embeddings(*current().upstream_and_sdk(), request.sdk_arguments(), deadline)
            return Fetched(fetched.body, fetched.usage, complete=bool(fetched.data.get("data")))

        return fetch

    answer = priced(through_cache("embeddings", canonical, caller, control, prepare, deadline, charged=body), body)
    if local_encoding and body.get("encoding_format") == "base64":
        return _replace_body(answer, _base64_embeddings(answer.body))
    return answer


def list_models(*, caller: str | None, control: CacheControl, deadline: Deadline) -> Answer:
    """Mistral's model list (what the gateway's key can use), cached briefly, filtered by the allow-list."""

    counted = _ModelsBudget(caller)

    def fetch() -> Fetched:
        from mistral_gateway.upstream import mistral as upstream

        counted.spend()  # a call that reaches Mistral is a request of the caller's (429 when spent)
        fetched = upstream.models(*current().upstream_and_sdk(), deadline)
        return Fetched(fetched.body, {}, complete=isinstance(fetched.data.get("data"), list))

    shared = _briefly(control)
    answer = through_cache("models", {"path": "/v1/models"}, None, shared, lambda: fetch, deadline, scope="shared")
    answer = counted.on(answer)
    allowed = settings().allowed_models
    per_key = key_policy.allowed_models()
    from mistral_gateway.flow.account import owned_models

    if not allowed and per_key is None and not owned_models.filtering():
        return answer
    # Filtered after the cache, per request: the cached list is Mistral's own, never one caller's view of it.
    listing = json.loads(answer.body)
    cards = listing.get("data", [])
    own = owned_models.own_fine_tuned(caller, cards)  # AccountRoutes=owned: only the caller's ft: models
    if not allowed and per_key is None and own is None:
        return answer
    listing["data"] = [
        card
        for card in cards
        if (not allowed or card.get("id") in allowed)
        and (per_key is None or card.get("id") in per_key)
        and owned_models.visible(card, own)
    ]
    return _replace_body(answer, json.dumps(listing))


def _briefly(control: CacheControl) -> CacheControl:
    """The caller's cache steering, with model listings kept MODELS_TTL_SECONDS unless it asked for less."""
    return replace(control, max_age=control.max_age or MODELS_TTL_SECONDS)


def retrieve_model(model_id: str, *, caller: str | None, control: CacheControl, deadline: Deadline) -> Answer:
    """One model card (`GET /v1/models/{id}`), cached briefly like the list; a model off the allow-list is 404,
    as Mistral answers for a model it does not know."""
    allowed = settings().allowed_models
    if allowed and model_id not in allowed:
        raise NotFound(f"Model not found: {model_id}", param="model_id", code="model_not_found")
    key_policy.check(model_id)
    from mistral_gateway.flow.account import owned_models

    owned_models.check_card(model_id, caller)  # another caller's ft: model: this same 404, before the cache

    counted = _ModelsBudget(caller)

    def fetch() -> Fetched:
        from mistral_gateway.flow import passthrough

        counted.spend()  # a call that reaches Mistral is a request of the caller's (429 when spent)
        card = passthrough.Forward("GET", f"models/{model_id}", "", {}, None, None, control, deadline)
        relayed = passthrough.relay(card)
        if relayed.status >= 400:
            raise passthrough.RelayedRejection(relayed)
        passthrough.json_object(relayed)
        return Fetched(relayed.body, {}, complete=True)

    shared = _briefly(control)
    key = {"path": f"/v1/models/{model_id}"}
    return counted.on(through_cache("models", key, None, shared, lambda: fetch, deadline, scope="shared"))


class _ModelsBudget:
    """The models routes count against the caller's budgets (issue 21): one request, no tokens, for every call
    that reaches Mistral; a hit (the listing is shared and kept MODELS_TTL_SECONDS) only with QUOTA_COUNT_HITS."""

    def __init__(self, caller: str | None) -> None:
        self.caller = caller
        self.headers: dict[str, str] | None = None

    def spend(self) -> None:
        reservation = current().budgets.reserve(self.caller, 0)
        self.headers = reservation.headers if reservation else {}

    def on(self, answer: Answer) -> Answer:
        if self.headers is None:  # answered from the cache
            budgets = current().budgets
            if not budgets.enabled:
                return answer
            if budgets.settings.quota_count_hits:
                self.spend()
            else:
                self.headers = budgets.peek(self.caller)
        return replace(answer, headers={**answer.headers, **(self.headers or {})})


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
        body = in_mistral_dialect(item)
        _, validated = admitted_completion("chat", body)
        if validated is not None:  # what admission.py vouches for is also what the SDK accepts
            from mistral_gateway.upstream import mistral as upstream

            upstream.preflight("chat", validated.sdk_arguments())
    except GatewayError as error:
        return {"index": index, "status": error.status, "cache": None, "body": error.body()}
    return None


# --- the cache flow shared by every endpoint ---------------------------------------------------------------

# What an endpoint hands the flow: `prepare()` (run only on a miss, before any write to the cache) finishes
# validation where admission.py vouched for the body, checks it against the SDK, and returns the upstream call.
Fetch = Callable[[], Fetched]
# Failures of Mistral (not of the request) after which an expired answer is better than an error.
STALE_ON = (UpstreamError, UpstreamTimeout, RateLimited, ServiceUnavailable)


@dataclass(frozen=True)
class Lookup:
    """What the cache holds for one request: a fresh answer to serve, or an expired one kept for errors."""

    key: str
    entry: Entry | None
    hit: Answer | None
    stale: CachedAnswer | None
    claim: Claim | None = None  # when the lookup also tried to take the single-flight lease (one round trip)


def look_up(
    route: str, canonical: Any, scope: str, control: CacheControl, *, lease_seconds: float | None = None
) -> Lookup:
    """The container's memory first (recent.py), then the table. With `lease_seconds` (a miss that will be
    stored, single-flight on) the table lookup is the lease claim itself: one UpdateItem that leads the miss
    or returns the answer or lease that refused it (cache.lead_or_find), so a miss costs one round trip
    before Mistral is called, not a GetItem and then an UpdateItem."""
    key = cache_key(route, scope, canonical)
    if not control.read:
        return Lookup(key, None, None, None)
    answers = current().answers
    remembered = answers.remembered(key, control.max_age)  # the container's recent answers (recent.py)
    if remembered is not None:
        observability.log_keys(cache_source="memory")
        return Lookup(key, Entry(remembered), _hit(remembered), None)
    claim = answers.lead_or_find(key, lease_seconds=lease_seconds) if lease_seconds is not None else None
    entry = claim.entry if claim is not None else answers.read(key)
    if entry is None or entry.answer is None:
        return Lookup(key, entry, None, None, claim)
    if entry.answer.usable(time.time(), control.max_age):
        return Lookup(key, entry, _hit(entry.answer), None, claim)
    return Lookup(key, entry, None, entry.answer, claim)


def through_cache(
    route: str,
    canonical: Any,
    caller: str | None,
    control: CacheControl,
    prepare: Callable[[], Fetch],
    deadline: Deadline,
    *,
    scope: str | None = None,
    charged: dict[str, Any] | None = None,
    cappable: bool = False,
) -> Answer:
    """The answer from the cache, or from Mistral (then stored). `charged` is the request body whose cost
    counts against the caller's budgets (None: not budgeted); it is estimated only when a miss spends it.
    `cappable`: the fetch sends quota.completion_cap() as `max_tokens` (chat, FIM)."""
    leads = _single_flight(control)
    lease_seconds = deadline.remaining_ms() / 1000 if leads else None
    found = look_up(route, canonical, scope or cache_scope(caller), control, lease_seconds=lease_seconds)
    if found.hit is not None:
        return budgeted_hit(found.hit, caller, charged)
    lease = found.claim.lease if found.claim is not None else None
    try:
        fetch = prepare()  # a 4xx here stores nothing
    except BaseException:
        if lease is not None:
            current().answers.release(lease)  # identical requests waiting on it stop waiting
        raise

    with _flight(found, control, deadline, enabled=leads) as flight:
        if flight.answer is not None:
            return budgeted_hit(_hit(flight.answer), caller, charged)
        status = count_miss(control)
        try:
            # 429 when the caller's budget is spent; a timeout keeps the reservation (Mistral bills the answer).
            with current().budgets.spending(caller, charged, cappable=cappable) as spending:
                fetched = fetch()
                spending.settle(sum(_token_counts(fetched.usage).values()))
        except STALE_ON as error:
            if found.stale is not None and within_stale_window(found.stale):
                return stale_answer(found.stale, error)
            raise
        account(fetched.body, fetched.usage)
        if fetched.complete and store(found.key, fetched.body, fetched.usage, control):
            flight.landed()
    served = fetched.served
    if served is not None and served.fell_back:
        observability.log_keys(**served.log_fields())
        return Answer(
            body=fetched.body.decode(),
            cache_status=status,
            usage=fetched.usage,
            headers={**spending.headers, **served.headers()},
            model=served.target.model,
        )
    return Answer(body=fetched.body.decode(), cache_status=status, usage=fetched.usage, headers=spending.headers)


def _single_flight(control: CacheControl) -> bool:
    """Single-flight applies to a miss whose answer will be stored (otherwise there is nothing to wait for)."""
    return control.read and control.store and ttl_for(control) > 0 and settings().single_flight_wait_ms > 0


def _flight(found: Lookup, control: CacheControl, deadline: Deadline, *, enabled: bool) -> singleflight.Flight:
    container = current()
    return singleflight.Flight(
        container.answers,
        found.key,
        found.entry,
        control.max_age,
        deadline,
        wait_ms=container.settings.single_flight_wait_ms,
        enabled=enabled,
        claim=found.claim,
    )


def ttl_for(control: CacheControl) -> int:
    return control.ttl(settings().cache_ttl_seconds)


def store(key: str, body: bytes, usage: dict[str, int], control: CacheControl, events: bytes | None = None) -> bool:
    """Keep a complete answer (and a stream's original events) for as long as the request allows."""
    ttl = ttl_for(control)
    if not control.store or ttl <= 0:
        return False
    return current().answers.put(key, body, ttl_seconds=ttl, events=events, **_token_counts(usage))


def count_miss(control: CacheControl) -> str:
    status = "BYPASS" if control.bypassed else "MISS"
    observability.log_keys(cache=status)
    observability.count(observability.CACHE_BYPASS if control.bypassed else observability.CACHE_MISS)
    return status


def budgeted_hit(answer: Answer, caller: str | None, charged: dict[str, Any] | None) -> Answer:
    """Hits are free by default (RateLimit headers only); with QUOTA_COUNT_HITS they spend their tokens."""
    budgets = current().budgets
    if charged is None or not budgets.enabled:
        return answer
    if budgets.settings.quota_count_hits:
        reservation = budgets.reserve(caller, sum(answer.usage.values()))
        headers = reservation.headers if reservation else {}
    else:
        headers = budgets.peek(caller)
    return replace(answer, headers={**answer.headers, **headers})


def account(body: bytes, usage: dict[str, int]) -> None:
    """Tokens Mistral billed for a miss: metrics and the log line (and the answer, with LOG_PROMPTS)."""
    if usage:
        observability.count(observability.PROMPT_TOKENS, usage["prompt_tokens"])
        observability.count(observability.COMPLETION_TOKENS, usage["completion_tokens"])
        observability.log_keys(**usage)
    if settings().log_prompts:
        logger.info("answer (LOG_PROMPTS is on)", extra={"answer": body.decode(errors="replace")[:20_000]})


def within_stale_window(cached: CachedAnswer) -> bool:
    window = settings().stale_if_error_seconds
    return window > 0 and time.time() <= cached.fresh_until + window


def stale_answer(cached: CachedAnswer, error: GatewayError) -> Answer:
    logger.warning(
        "Mistral failed; serving an expired answer (stale-if-error)",
        extra={"error_type": error.error_type, "error_status": error.status, "stale_seconds": _age(cached)},
    )
    observability.log_keys(cache="STALE", **_from_cache(cached))
    observability.count(observability.CACHE_STALE)
    usage = {"prompt_tokens": cached.prompt_tokens, "completion_tokens": cached.completion_tokens}
    return Answer(body=cached.body.decode(), cache_status="STALE", usage=usage, events=cached.events)


def _age(cached: CachedAnswer) -> int:
    return int(time.time() - cached.fresh_until)


def _hit(cached: CachedAnswer) -> Answer:
    tokens = cached.prompt_tokens + cached.completion_tokens
    observability.log_keys(cache="HIT", tokens_from_cache=tokens, **_from_cache(cached))
    observability.count(observability.CACHE_HIT)
    observability.count(observability.TOKENS_SERVED_FROM_CACHE, tokens)
    usage = {"prompt_tokens": cached.prompt_tokens, "completion_tokens": cached.completion_tokens}
    return Answer(body=cached.body.decode(), cache_status="HIT", usage=usage, events=cached.events)


def _from_cache(cached: CachedAnswer) -> dict[str, int]:
    """The served line's split of what a hit saved: what prices its saving per key (spend.py)."""
    return {
        "prompt_tokens_from_cache": cached.prompt_tokens,
        "completion_tokens_from_cache": cached.completion_tokens,
    }


def _token_counts(usage: dict[str, int]) -> dict[str, int]:
    return {"prompt_tokens": usage.get("prompt_tokens", 0), "completion_tokens": usage.get("completion_tokens", 0)}


def is_complete(data: dict[str, Any]) -> bool:
    """A whole, successful answer: every choice finished for a normal reason."""
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices:
        return False
    return all(isinstance(choice, dict) and choice.get("finish_reason") in sse.FINISHED for choice in choices)


def as_stream(answer: Answer) -> Answer:
    """A complete answer served to a streamed request: the original events when it was stored from a stream."""
    events = answer.events.decode() if answer.events is not None else sse.to_events(json.loads(answer.body))
    return replace(answer, body=events, content_type=EVENT_STREAM)


def _replace_body(answer: Answer, body: str) -> Answer:
    return replace(answer, body=body)


def priced(answer: Answer, body: dict[str, Any]) -> Answer:
    """Usage, cost or saving headers, priced at the model that answered."""
    extra = current().prices.headers_and_metrics(answer.model or body.get("model"), answer.cache_status, answer.usage)
    return replace(answer, headers={**answer.headers, **extra})


def _base64_embeddings(body: str) -> str:
    """What the OpenAI SDK asks for by default: each vector as base64 of little-endian float32."""
    data = json.loads(body)
    for item in data.get("data", []):
        vector = item.get("embedding")
        if isinstance(vector, list):
            item["embedding"] = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
    return json.dumps(data)


def log_prompt(prompt: Any) -> None:
    if settings().log_prompts:
        logger.info("prompt (LOG_PROMPTS is on)", extra={"prompt": prompt})


# --- validation --------------------------------------------------------------------------------------------


def validate(model_name: str, body: dict[str, Any]) -> Any:
    from pydantic import ValidationError

    from mistral_gateway.requests import models

    try:
        return getattr(models, model_name).model_validate(body)
    except ValidationError as error:
        raise validation_failed(error) from None


def in_mistral_dialect(body: dict[str, Any]) -> dict[str, Any]:
    """A chat body in Mistral's dialect; what the translation drops or renames is validated first."""
    if dialect.speaks_openai(body) and not admission.openai_fields_certainly_valid(body):
        validate("OpenAIDialectFields", body)
    return dialect.mistral_chat(body)


def admitted(model_name: str, body: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """Validate before the cache lookup: the form the key is computed over, and the validated request (None
    when admission.py vouches for the body as it is, so a hit of a simple request never loads pydantic)."""
    if admission.certainly_valid(model_name, body):
        return body, None
    request = validate(model_name, body)
    return request.key_form(), request


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
