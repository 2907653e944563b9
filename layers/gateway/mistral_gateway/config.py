"""Settings read once per container from the environment the template gives the function.

Every knob has a default that works for `make serve`; template.yaml Parameters map onto these names.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import cache

DEFAULT_SERVER_URL = "https://api.mistral.ai"


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw else default


def _bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    return raw in {"1", "true", "yes", "on"} if raw else default


def _csv(name: str) -> frozenset[str]:
    return frozenset(item.strip() for item in os.environ.get(name, "").split(",") if item.strip())


def _chains(name: str) -> dict[str, tuple[str, ...]]:
    """JSON {"model": ["fallback", ...]}. A malformed value turns fallbacks off, loudly: an optional feature's
    typo must not take every request down with it."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    if not isinstance(data, dict) or not all(
        isinstance(targets, list) and all(isinstance(target, str) and target for target in targets)
        for targets in data.values()
    ):
        from mistral_gateway.observability import logger

        logger.error(f'{name} must be JSON like {{"model": ["fallback model", ...]}}; fallbacks are off')
        return {}
    return {str(model): tuple(targets) for model, targets in data.items()}


@dataclass(frozen=True)
class Settings:
    table_name: str
    secret_id: str
    server_url: str = DEFAULT_SERVER_URL
    cache_ttl_seconds: int = 86_400
    # Total time we give one request before answering ourselves; API Gateway REST gives up at 29 s.
    request_deadline_ms: int = 25_000
    # Per-attempt ceiling for one upstream HTTP call (the deadline still wins).
    upstream_timeout_ms: int = 20_000
    upstream_max_attempts: int = 3
    secret_max_age_seconds: int = 300
    allowed_models: frozenset[str] = field(default_factory=frozenset)
    # "caller": cache entries are scoped to the caller's API key id; "shared": one cache for all callers.
    cache_scope: str = "caller"
    # Debug only: when true, prompts and answers are written to the logs. Off by default.
    log_prompts: bool = False
    max_body_bytes: int = 1_048_576
    aws_timeout_seconds: float = 2.0
    batch_max_items: int = 20
    # Upstream calls a batch makes at once (Mistral's rate limits are per key, so keep this modest).
    batch_concurrency: int = 4
    # An expired answer is kept (and may be served as STALE when Mistral fails) this much longer.
    stale_if_error_seconds: int = 86_400
    # Identical concurrent misses wait this long for the first one's answer (0 = off).
    single_flight_wait_ms: int = 8_000
    circuit_failure_threshold: int = 5
    circuit_cooldown_seconds: int = 30
    # Per-caller budgets (quota.py); empty table name = no quotas.
    quota_table_name: str = ""
    quota_count_hits: bool = False
    # Tokens reserved for the completion when a request sets no max_tokens (refunded after the answer).
    quota_default_completion_tokens: int = 1_024
    # DynamoDB is on the hot path and normally answers in ~5 ms: give up fast and fail open.
    cache_timeout_seconds: float = 0.5
    # Streams (the streaming function): the longest silence between two upstream chunks, how often an SSE
    # comment keeps a silent connection alive, and the total cap (under API Gateway's integration timeout).
    stream_idle_timeout_ms: int = 60_000
    stream_keepalive_ms: int = 15_000
    stream_max_ms: int = 600_000
    # Model fallbacks (fallback.py): requested model -> targets tried in order when it keeps failing; a target
    # "self-hosted:<model>" is that model on the second upstream (a Mistral-compatible server of your own).
    fallback_chains: dict[str, tuple[str, ...]] = field(default_factory=dict)
    self_hosted_url: str = ""
    self_hosted_secret_id: str = ""  # empty: the server takes no key (e.g. on a private network)
    # Mistral's account routes (files, batch jobs, agents...) shared by every caller: off unless enabled.
    account_endpoints: bool = False
    # Access-Control-Allow-Origin for browsers (the template's CorsAllowOrigin).
    cors_allow_origin: str = "*"

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            table_name=os.environ.get("CACHE_TABLE_NAME", "mistral-gateway-cache"),
            secret_id=os.environ.get("MISTRAL_SECRET_ID", "mistral-gateway/api-key"),
            server_url=(os.environ.get("MISTRAL_SERVER_URL", "").strip() or DEFAULT_SERVER_URL).rstrip("/"),
            cache_ttl_seconds=_int("CACHE_TTL_SECONDS", 86_400),
            # The buffered function is capped by API Gateway's 29 s; the streaming one sets it higher.
            request_deadline_ms=_int("REQUEST_DEADLINE_MS", 25_000),
            upstream_timeout_ms=_int("UPSTREAM_TIMEOUT_MS", 20_000),
            upstream_max_attempts=max(1, _int("UPSTREAM_MAX_ATTEMPTS", 3)),
            secret_max_age_seconds=_int("SECRET_MAX_AGE_SECONDS", 300),
            allowed_models=_csv("ALLOWED_MODELS"),
            cache_scope=os.environ.get("CACHE_SCOPE", "caller").strip().lower() or "caller",
            log_prompts=_bool("LOG_PROMPTS", False),
            max_body_bytes=_int("MAX_BODY_BYTES", 1_048_576),
            batch_max_items=max(1, _int("BATCH_MAX_ITEMS", 20)),
            batch_concurrency=max(1, _int("BATCH_CONCURRENCY", 4)),
            stale_if_error_seconds=max(0, _int("STALE_IF_ERROR_SECONDS", 86_400)),
            single_flight_wait_ms=max(0, _int("SINGLE_FLIGHT_WAIT_MS", 8_000)),
            circuit_failure_threshold=max(1, _int("CIRCUIT_FAILURE_THRESHOLD", 5)),
            circuit_cooldown_seconds=max(1, _int("CIRCUIT_COOLDOWN_SECONDS", 30)),
            cache_timeout_seconds=_int("CACHE_TIMEOUT_MS", 500) / 1000,
            quota_table_name=os.environ.get("QUOTA_TABLE_NAME", "").strip(),
            quota_count_hits=_bool("QUOTA_COUNT_HITS", False),
            quota_default_completion_tokens=max(0, _int("QUOTA_DEFAULT_COMPLETION_TOKENS", 1_024)),
            stream_idle_timeout_ms=max(1_000, _int("STREAM_IDLE_TIMEOUT_MS", 60_000)),
            stream_keepalive_ms=max(100, _int("STREAM_KEEPALIVE_MS", 15_000)),
            stream_max_ms=max(1_000, _int("STREAM_MAX_MS", 600_000)),
            fallback_chains=_chains("FALLBACK_CHAINS"),
            self_hosted_url=os.environ.get("SELF_HOSTED_SERVER_URL", "").strip().rstrip("/"),
            self_hosted_secret_id=os.environ.get("SELF_HOSTED_SECRET_ID", "").strip(),
            account_endpoints=_bool("ACCOUNT_ENDPOINTS", False),
            cors_allow_origin=os.environ.get("CORS_ALLOW_ORIGIN", "").strip() or "*",
        )


@cache
def settings() -> Settings:
    """The container's settings; tests call `settings.cache_clear()` after changing the environment."""
    return Settings.from_env()
