"""The cache flow every cached route shares: look up, (on a miss) fetch once and store, price the answer.

A route hands `through_cache` its canonical request and a `prepare()` that returns the upstream call; the
lookup is the container's memory first (recent.py), then the table, where a miss that will be stored takes the
single-flight lease in the same round trip. A failure is never stored; an expired answer may stand in for one
(stale-if-error).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from mistral_gateway.container import current, settings
from mistral_gateway.platform import after_response, observability
from mistral_gateway.platform.deadline import Deadline
from mistral_gateway.platform.errors import (
    GatewayError,
    RateLimited,
    ServiceUnavailable,
    UpstreamError,
    UpstreamTimeout,
)
from mistral_gateway.platform.observability import logger
from mistral_gateway.policies import singleflight
from mistral_gateway.policies.cache import CachedAnswer, Claim, Entry
from mistral_gateway.requests.canonical import cache_key
from mistral_gateway.requests.http import CacheControl
from mistral_gateway.upstream import sse

if TYPE_CHECKING:
    from mistral_gateway.flow.fallback import Served  # loaded on a miss only


JSON = "application/json"


EVENT_STREAM = "text/event-stream"


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


# What an endpoint hands the flow: `prepare()` (run only on a miss, before any write to the cache) finishes
# validation where admission.py vouched for the body, checks it against the SDK, and returns the upstream call.
Fetch = Callable[[], Fetched]


# Failures of Mistral (not of the request) after which an expired answer is better than an error.
STALE_ON = (UpstreamError, UpstreamTimeout, RateLimited, ServiceUnavailable)


def cache_scope(caller: str | None) -> str:
    if settings().cache_scope == "shared":
        return "shared"
    return f"caller:{caller}" if caller else "anonymous"


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
        if fetched.complete:
            # Stored once the caller has the answer when the function can (after_response.py), else now; the
            # lease lasts until then, so identical requests wait for the stored answer, not ask Mistral again.
            settle = flight.settled_by(lambda: store(found.key, fetched.body, fetched.usage, control))
            if settings().store_after_response:
                after_response.later(settle)
            else:
                settle()
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


def priced(answer: Answer, body: dict[str, Any]) -> Answer:
    """Usage, cost or saving headers, priced at the model that answered."""
    extra = current().prices.headers_and_metrics(answer.model or body.get("model"), answer.cache_status, answer.usage)
    return replace(answer, headers={**answer.headers, **extra})
