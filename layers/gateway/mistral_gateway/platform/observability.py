"""The one place that builds the Logger, Metrics and Tracer, and names every metric the code emits.

Service name, namespace and log level come from the template's Globals (POWERTOOLS_* variables).
The Tracer (and with it the X-Ray SDK, ~400 ms to import) is built on first use so that a cache hit
never pays for it.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import warnings
from collections.abc import Iterator
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric

logger = Logger(use_rfc3339=True)
metrics = Metrics()
# Whatever a request can choose (a model name, a path) is logged at most this long: one caller must not be
# able to write megabytes of log lines (CloudWatch bills ingestion) or bury other callers' lines.
MAX_LOGGED_CHARS = 200
MAX_LOGGED_TRACE_CHARS = 8_000
# /health and /docs legitimately emit no metric; Powertools would warn on every such request.
warnings.filterwarnings("ignore", message="No application metrics to publish")

# Metric names: the dashboard and alarms in template.yaml refer to these, and a test checks they match.
CACHE_HIT = "CacheHit"
CACHE_MISS = "CacheMiss"
CACHE_BYPASS = "CacheBypass"
CACHE_ERROR = "CacheError"
CACHE_STORE_SKIPPED = "CacheStoreSkipped"
UPSTREAM_CALLS = "UpstreamCalls"
UPSTREAM_LATENCY = "UpstreamLatency"
UPSTREAM_ERRORS = "UpstreamErrors"
UPSTREAM_FAILURES = "UpstreamFailures"
UPSTREAM_RETRIES = "UpstreamRetries"
PROMPT_TOKENS = "PromptTokens"
COMPLETION_TOKENS = "CompletionTokens"
TOKENS_SERVED_FROM_CACHE = "TokensServedFromCache"
SECRET_ERRORS = "SecretErrors"
CLIENT_ERRORS = "ClientErrors"
CACHE_STALE = "CacheStale"
SINGLE_FLIGHT_WAITS = "SingleFlightWaits"
CIRCUIT_OPENED = "CircuitOpened"
CIRCUIT_HALF_OPEN = "CircuitHalfOpen"
CIRCUIT_CLOSED = "CircuitClosed"
ESTIMATED_COST = "EstimatedCostUSD"
ESTIMATED_COST_SAVED = "EstimatedCostSavedUSD"
TOKENS_SAVED_BY_MODEL = "TokensServedFromCacheByModel"
QUOTA_REJECTIONS = "QuotaRejections"
QUOTA_ERRORS = "QuotaErrors"
TIME_TO_FIRST_TOKEN = "TimeToFirstToken"  # streamed misses: request start to Mistral's first event forwarded
STREAM_DURATION = "StreamDuration"
STREAMS_ENDED_EARLY = "StreamsEndedEarly"  # cut, idle, too long or the caller hung up: nothing stored
MODEL_FALLBACKS = "ModelFallbacks"  # by from, to and reason (all from the operator's chains, never the caller)
PASSTHROUGH_REQUESTS = "PassThroughRequests"  # by `policy`: cached, passed, account
CACHED_PROMPT_TOKENS = "CachedPromptTokens"  # prompt tokens Mistral served from its prompt cache (billed 10 %)
STORED_RESPONSES = "StoredResponses"  # /v1/responses kept by the gateway (responses.py)
RESPONSE_STORE_ERRORS = "ResponseStoreErrors"  # the responses table failed (read, write or delete)

EMITTED_METRICS = frozenset(
    {
        CACHE_HIT,
        CACHE_MISS,
        CACHE_BYPASS,
        CACHE_ERROR,
        CACHE_STORE_SKIPPED,
        UPSTREAM_CALLS,
        UPSTREAM_LATENCY,
        UPSTREAM_ERRORS,
        UPSTREAM_FAILURES,
        UPSTREAM_RETRIES,
        PROMPT_TOKENS,
        COMPLETION_TOKENS,
        TOKENS_SERVED_FROM_CACHE,
        SECRET_ERRORS,
        CLIENT_ERRORS,
        CACHE_STALE,
        SINGLE_FLIGHT_WAITS,
        CIRCUIT_OPENED,
        CIRCUIT_HALF_OPEN,
        CIRCUIT_CLOSED,
        ESTIMATED_COST,
        ESTIMATED_COST_SAVED,
        TOKENS_SAVED_BY_MODEL,
        QUOTA_REJECTIONS,
        QUOTA_ERRORS,
        TIME_TO_FIRST_TOKEN,
        STREAM_DURATION,
        STREAMS_ENDED_EARLY,
        MODEL_FALLBACKS,
        PASSTHROUGH_REQUESTS,
        CACHED_PROMPT_TOKENS,
        STORED_RESPONSES,
        RESPONSE_STORE_ERRORS,
        "ColdStart",  # emitted by Powertools' capture_cold_start_metric
    }
)


def count(name: str, value: float = 1) -> None:
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


def milliseconds(name: str, value: float) -> None:
    metrics.add_metric(name=name, unit=MetricUnit.Milliseconds, value=round(value, 2))


def count_by(
    name: str, dimension: str, value_of_dimension: str, value: float = 1, unit: MetricUnit = MetricUnit.Count
) -> None:
    """A metric with its own low-cardinality dimension (e.g. UpstreamErrors by kind, cost by model)."""
    count_by_dimensions(name, {dimension: value_of_dimension}, value, unit)


def count_by_dimensions(
    name: str, dimensions: dict[str, str], value: float = 1, unit: MetricUnit = MetricUnit.Count
) -> None:
    """A metric with low-cardinality dimensions of its own (values the operator set, never the caller)."""
    with single_metric(
        name=name,
        unit=unit,
        value=value,
        namespace=metrics.namespace,
        default_dimensions=metrics.default_dimensions,
    ) as metric:
        for dimension, value_of_dimension in dimensions.items():
            metric.add_dimension(name=dimension, value=value_of_dimension)


_tracer: Any = None


def tracer() -> Any:
    """The container's Tracer, built on first need (keeps the X-Ray SDK off the cache-hit path)."""
    global _tracer
    if _tracer is None:
        from aws_lambda_powertools import Tracer

        _tracer = Tracer()
    return _tracer


def sampled() -> bool:
    """Whether X-Ray samples this invocation. Lambda sets the header per invocation; subsegments of an
    unsampled trace are thrown away, so building the X-Ray SDK for one (~150 ms and ~10 MB: its recorder
    creates botocore clients at import) would be pure cold-start cost."""
    return "Sampled=1" in os.environ.get("_X_AMZN_TRACE_ID", "")


@contextlib.contextmanager
def traced(name: str, *, lazy: bool = False) -> Iterator[None]:
    """An X-Ray subsegment around a block when the invocation is sampled; with lazy=True only when the
    Tracer is already built (the cache calls: a hit never builds it)."""
    if (lazy and _tracer is None) or not sampled():
        yield
        return
    with tracer().provider.in_subsegment(f"## {name}"):
        yield


# Set inside one batch item (in its own copy of the request's context): its keys are that item's alone.
_IN_ITEM: contextvars.ContextVar[bool] = contextvars.ContextVar("mistral_gateway_in_batch_item", default=False)


def log_keys(**keys: Any) -> None:
    """Keys for the request's next log lines, "request served" included. Inside a batch item, Powertools'
    thread-safe keys instead: items run at once on worker threads, and one item's model, cache status or
    tokens must not reach another item's lines nor the request's line."""
    if _IN_ITEM.get():
        logger.thread_safe_append_keys(**keys)
    else:
        logger.append_keys(**keys)


def item_context() -> contextvars.Context:
    """A copy of the calling (request's) context for one batch item to run in (`.run(...)`): there log_keys
    adds thread-safe keys, which end with the item. One per item: a context runs one call at a time."""
    context = contextvars.copy_context()
    context.run(_IN_ITEM.set, True)
    return context


def answered_with_error(status: int, error_type: str) -> None:
    """What every error answer records, whichever function serves it: its type on the request's line, and
    the caller's mistakes (4xx) counted apart from the gateway's own failures."""
    if status < 500:
        count(CLIENT_ERRORS)
    logger.append_keys(error_type=error_type)


def bounded(value: Any, limit: int = MAX_LOGGED_CHARS) -> Any:
    """A request-derived value fit for a log line: strings cut to `limit` characters (marked), others as is."""
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:limit]}...[{len(value)} chars]"
    return value


def log_unexpected(message: str, error: BaseException) -> None:
    """An unexpected error for the operator: its class and stack frames, bounded. Not its message, which may
    quote the request (a key, a prompt, megabytes of it)."""
    import traceback

    frames = "".join(traceback.format_tb(error.__traceback__))[-MAX_LOGGED_TRACE_CHARS:]
    logger.error(message, extra={"error_class": type(error).__name__, "frames": frames})
