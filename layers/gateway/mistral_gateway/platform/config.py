"""Settings read once per container from the environment the template gives the function.

One table: each field names its environment variable and its default, once; units are in the names
(`_ms`, `_seconds`, `_bytes`). Every default works for `make serve`; template.yaml Parameters map onto these
variables, and the README's configuration table lists them (a test holds it to this table).
Plain dataclasses, not pydantic: settings are read on the cache-hit path, which never loads pydantic.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

DEFAULT_SERVER_URL = "https://api.mistral.ai"


def _text(raw: str) -> str:
    return raw


def _url(raw: str) -> str:
    return raw.rstrip("/")


def _lower(raw: str) -> str:
    return raw.lower()


def _bool(raw: str) -> bool:
    return raw.lower() in {"1", "true", "yes", "on"}


def _names(raw: str) -> frozenset[str]:
    return frozenset(item.strip() for item in raw.split(",") if item.strip())


def _chains(raw: str) -> dict[str, tuple[str, ...]]:
    """JSON {"model": ["fallback", ...]}. A malformed value turns fallbacks off, loudly: an optional feature's
    typo must not take every request down with it."""
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    if not isinstance(data, dict) or not all(
        isinstance(targets, list) and all(isinstance(target, str) and target for target in targets)
        for targets in data.values()
    ):
        _complain('FALLBACK_CHAINS must be JSON like {"model": ["fallback model", ...]}; fallbacks are off')
        return {}
    return {str(model): tuple(targets) for model, targets in data.items()}


def _prices(raw: str) -> dict[str, tuple[float, float]]:
    """JSON {"model": [input, output]} in USD per million tokens; malformed: list prices, with a warning."""
    try:
        data = json.loads(raw)
        return {str(model): (float(pair[0]), float(pair[1])) for model, pair in data.items()}
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        _complain("MODEL_PRICES is not valid JSON {model: [input, output]}; using list prices", warning=True)
        return {}


def _complain(message: str, *, warning: bool = False) -> None:
    from mistral_gateway.platform.observability import logger

    (logger.warning if warning else logger.error)(message)


def setting(env: str, default: Any, parse: Callable[[str], Any] = _text, *, minimum: float | None = None) -> Any:
    """A settings field: its variable, its default (used when the variable is unset or blank), its parser and
    an optional floor (a value below it is raised to it: a typo must not disable a safety limit)."""
    metadata = {"env": env, "parse": parse, "minimum": minimum}
    if isinstance(default, dict):
        return field(default_factory=lambda: dict(default), metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class Settings:
    table_name: str = setting("CACHE_TABLE_NAME", "mistral-gateway-cache")
    secret_id: str = setting("MISTRAL_SECRET_ID", "mistral-gateway/api-key")
    server_url: str = setting("MISTRAL_SERVER_URL", DEFAULT_SERVER_URL, _url)
    cache_ttl_seconds: int = setting("CACHE_TTL_SECONDS", 86_400, int)
    # "caller": cache entries are scoped to the caller's API key id; "shared": one cache for all callers.
    cache_scope: str = setting("CACHE_SCOPE", "caller", _lower)
    # Total time we give one request before answering ourselves; API Gateway REST gives up at 29 s. The
    # streaming function sets it higher.
    request_deadline_ms: int = setting("REQUEST_DEADLINE_MS", 25_000, int)
    # Per-attempt ceiling for one upstream HTTP call (the deadline still wins).
    upstream_timeout_ms: int = setting("UPSTREAM_TIMEOUT_MS", 20_000, int)
    upstream_max_attempts: int = setting("UPSTREAM_MAX_ATTEMPTS", 3, int, minimum=1)
    secret_max_age_seconds: int = setting("SECRET_MAX_AGE_SECONDS", 300, int)
    allowed_models: frozenset[str] = setting("ALLOWED_MODELS", frozenset(), _names)
    # Debug only: when true, prompts and answers are written to the logs. Off by default.
    log_prompts: bool = setting("LOG_PROMPTS", False, _bool)
    max_body_bytes: int = setting("MAX_BODY_BYTES", 1_048_576, int)
    # DynamoDB is on the hot path and normally answers in ~5 ms: give up fast and fail open.
    cache_timeout_ms: int = setting("CACHE_TIMEOUT_MS", 500, int, minimum=1)
    # Other AWS calls (the secret is needed, so it gets more).
    aws_timeout_ms: int = setting("AWS_TIMEOUT_MS", 2_000, int, minimum=1)
    batch_max_items: int = setting("BATCH_MAX_ITEMS", 20, int, minimum=1)
    # Upstream calls a batch makes at once (Mistral's rate limits are per key, so keep this modest).
    batch_concurrency: int = setting("BATCH_CONCURRENCY", 4, int, minimum=1)
    # An expired answer is kept (and may be served as STALE when Mistral fails) this much longer.
    stale_if_error_seconds: int = setting("STALE_IF_ERROR_SECONDS", 86_400, int, minimum=0)
    # Identical concurrent misses wait this long for the first one's answer (0 = off).
    single_flight_wait_ms: int = setting("SINGLE_FLIGHT_WAIT_MS", 8_000, int, minimum=0)
    # A plain (not streamed) miss is answered first and its answer stored after, in Lambda's post-response time
    # (after_response.py); false stores it before answering.
    store_after_response: bool = setting("STORE_AFTER_RESPONSE", True, _bool)
    # Recent answers kept in the container in front of the table (recent.py): bytes held, and how long one
    # taken from the table is served from memory at most (0 for either = off).
    answer_memory_bytes: int = setting("ANSWER_MEMORY_BYTES", 33_554_432, int, minimum=0)
    answer_memory_seconds: int = setting("ANSWER_MEMORY_SECONDS", 60, int, minimum=0)
    circuit_failure_threshold: int = setting("CIRCUIT_FAILURE_THRESHOLD", 5, int, minimum=1)
    circuit_cooldown_seconds: int = setting("CIRCUIT_COOLDOWN_SECONDS", 30, int, minimum=1)
    # Circuits are per model (circuit.py); faults from this many distinct models in a row pause the whole upstream.
    circuit_models_threshold: int = setting("CIRCUIT_MODELS_THRESHOLD", 3, int, minimum=1)
    # Per-caller budgets (quota.py); empty table name = no budgets.
    quota_table_name: str = setting("QUOTA_TABLE_NAME", "")
    quota_count_hits: bool = setting("QUOTA_COUNT_HITS", False, _bool)
    # The most a request without max_tokens may write when its key has a token budget: the gateway sends it as
    # max_tokens (less when the budget has less room), so the reservation is a true upper bound (quota.py).
    quota_default_completion_tokens: int = setting("QUOTA_DEFAULT_COMPLETION_TOKENS", 4_096, int, minimum=1)
    # How long a container keeps a caller's limits before reading them again (a change takes this long).
    quota_limits_max_age_seconds: int = setting("QUOTA_LIMITS_MAX_AGE_SECONDS", 60, int, minimum=0)
    # Streams (the streaming function): the longest silence between two upstream chunks, how often an SSE
    # comment keeps a silent connection alive, and the total cap (under API Gateway's integration timeout).
    stream_idle_timeout_ms: int = setting("STREAM_IDLE_TIMEOUT_MS", 60_000, int, minimum=1_000)
    stream_keepalive_ms: int = setting("STREAM_KEEPALIVE_MS", 15_000, int, minimum=100)
    stream_max_ms: int = setting("STREAM_MAX_MS", 600_000, int, minimum=1_000)
    # Model fallbacks (fallback.py): requested model -> targets tried in order when it keeps failing; a target
    # "self-hosted:<model>" is that model on the second upstream (a Mistral-compatible server of your own).
    fallback_chains: dict[str, tuple[str, ...]] = setting("FALLBACK_CHAINS", {}, _chains)
    self_hosted_url: str = setting("SELF_HOSTED_SERVER_URL", "", _url)
    self_hosted_secret_id: str = setting("SELF_HOSTED_SECRET_ID", "")  # empty: the server takes no key
    # Mistral's account routes (files, batch jobs, agents...): "owned" (each caller sees only what it created,
    # ownership.py), "shared" (passed through: one tenant), "off" (403).
    account_routes: str = setting("ACCOUNT_ROUTES", "owned", _lower)
    # The ownership ledger (ledger.py) for AccountRoutes=owned.
    ledger_table_name: str = setting("LEDGER_TABLE_NAME", "")
    # Stored /v1/responses (responses.py): the table, and how long a stored response may be read or chained.
    responses_table_name: str = setting("RESPONSES_TABLE_NAME", "mistral-gateway-responses")
    responses_ttl_seconds: int = setting("RESPONSES_TTL_SECONDS", 2_592_000, int, minimum=60)
    # Access-Control-Allow-Origin for browsers (the template's CorsAllowOrigin).
    cors_allow_origin: str = setting("CORS_ALLOW_ORIGIN", "*")
    # USD per million tokens (input, output) over economics.LIST_PRICES: the template's ModelPrices.
    model_prices: dict[str, tuple[float, float]] = setting("MODEL_PRICES", {}, _prices)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        """Each field from its variable; unset or blank means the default."""
        source = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for spec in fields(cls):
            raw = source.get(spec.metadata["env"], "").strip()
            if not raw:
                continue
            value = spec.metadata["parse"](raw)
            minimum = spec.metadata["minimum"]
            values[spec.name] = max(minimum, value) if minimum is not None else value
        return cls(**values)
