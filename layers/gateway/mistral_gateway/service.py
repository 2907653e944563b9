"""The request flow: cache lookup, then (on a miss) validation, the upstream call and the store.

handler -> service -> (cache, upstream). Validation runs after the lookup on purpose: only validated
requests are ever stored, and the key is computed over the raw body without coercion, so a body that would
fail validation can never be a hit; meanwhile a hit never loads pydantic or the SDK.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from mistral_gateway import observability
from mistral_gateway.cache import CachedAnswer, ResponseCache
from mistral_gateway.canonical import cache_key, canonical_chat
from mistral_gateway.config import settings
from mistral_gateway.deadline import Deadline
from mistral_gateway.errors import InvalidRequest, RequestValidationFailed
from mistral_gateway.http import CacheControl
from mistral_gateway.observability import logger


@dataclass(frozen=True)
class Answer:
    body: str
    cache_status: str  # HIT | MISS | BYPASS
    headers: dict[str, str] = field(default_factory=dict)


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


def chat_completion(body: dict[str, Any], *, caller: str | None, control: CacheControl, deadline: Deadline) -> Answer:
    check_model(body)
    if isinstance(body.get("model"), str):
        logger.append_keys(model=body["model"])
    config = settings()
    key = cache_key("chat", cache_scope(caller), canonical_chat(body))
    if control.read:
        cached = response_cache().get(key)
        if cached is not None and _usable(cached, control):
            return _hit(cached)
    status = "BYPASS" if control.bypassed else "MISS"
    logger.append_keys(cache=status)
    observability.count(observability.CACHE_BYPASS if control.bypassed else observability.CACHE_MISS)

    request = validate_chat(body)
    if config.log_prompts:
        logger.info("prompt (LOG_PROMPTS is on)", extra={"messages": body.get("messages")})

    from mistral_gateway import upstream

    answer = upstream.chat(request.sdk_arguments(), deadline)
    usage = answer.usage
    observability.count(observability.PROMPT_TOKENS, usage["prompt_tokens"])
    observability.count(observability.COMPLETION_TOKENS, usage["completion_tokens"])
    logger.append_keys(**usage)
    if config.log_prompts:
        logger.info("answer (LOG_PROMPTS is on)", extra={"answer": answer.data.get("choices")})

    if control.store and is_complete(answer.data):
        ttl = control.max_age if control.max_age is not None else config.cache_ttl_seconds
        if ttl > 0:
            response_cache().put(key, answer.body, ttl_seconds=ttl, **usage)
    return Answer(body=answer.body.decode(), cache_status=status)


def _usable(cached: CachedAnswer, control: CacheControl) -> bool:
    now = time.time()
    if not cached.is_fresh(now):
        return False
    return control.max_age is None or now - cached.created_at <= control.max_age


def _hit(cached: CachedAnswer) -> Answer:
    logger.append_keys(cache="HIT", tokens_from_cache=cached.prompt_tokens + cached.completion_tokens)
    observability.count(observability.CACHE_HIT)
    observability.count(observability.TOKENS_SERVED_FROM_CACHE, cached.prompt_tokens + cached.completion_tokens)
    return Answer(body=cached.body.decode(), cache_status="HIT")


def is_complete(data: dict[str, Any]) -> bool:
    """A whole, successful answer: every choice finished for a normal reason."""
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices:
        return False
    return all(
        isinstance(choice, dict) and choice.get("finish_reason") in {"stop", "length", "tool_calls", "model_length"}
        for choice in choices
    )


def validate_chat(body: dict[str, Any]) -> Any:
    from pydantic import ValidationError

    from mistral_gateway.models import ChatCompletionRequest

    try:
        return ChatCompletionRequest.model_validate(body)
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
