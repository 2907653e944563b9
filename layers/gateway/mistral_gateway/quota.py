"""Per-caller budgets (requests and tokens per minute and per day), exact across Lambda containers.

Limits live in the quota table, per caller key id (`limits#<key id>`, or `limits#default` for every caller
without its own item): attributes requests_per_minute, tokens_per_minute, requests_per_day, tokens_per_day;
a missing attribute means no limit. `python -m gateway_dev.quota` (or any DynamoDB client) writes them.

Usage is counted in one item per caller and window (`usage#<key id>#minute#<window start>`), updated with
an atomic ADD under a condition that the new total fits the limit, so concurrent requests in any number
of containers can never spend more than the budget. Before the upstream call the request reserves its
worst case (estimate_tokens: an upper bound of what Mistral can bill); afterwards the reservation is
corrected to the real usage. Over budget -> 429 with Retry-After. Every answer to a limited caller carries the IETF
RateLimit-Limit / RateLimit-Remaining / RateLimit-Reset headers of its tightest budget.

The quota table fails open (warning + metric): a sick table must not take the gateway down.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from mistral_gateway import aws, observability
from mistral_gateway.config import settings
from mistral_gateway.errors import RateLimited
from mistral_gateway.observability import logger

WINDOWS = {"minute": 60, "day": 86_400}
LIMIT_FIELDS = ("requests_per_minute", "tokens_per_minute", "requests_per_day", "tokens_per_day")
LIMITS_CACHE_SECONDS = 60
# Control tokens of a chat template ([INST], [/INST], [TOOL_CALLS]...), per request and per message: a margin.
TEMPLATE_TOKENS = 16
# A content part whose cost is not its size. An image is at most a few thousand tokens on every Mistral vision
# model (a 1024x1024 image in 16 px patches is 4,096 plus row breaks); a document's pages are each about an
# image, and its page count cannot be known from the request: an estimate (README).
MEDIA_TOKENS = {"image_url": 8_192, "input_image": 8_192, "document_url": 65_536, "file": 65_536}


@dataclass(frozen=True)
class Limits:
    values: dict[str, int]  # e.g. {"tokens_per_minute": 10000}

    def of(self, kind: str, window: str) -> int | None:
        return self.values.get(f"{kind}_per_{window}")

    def windows(self) -> list[str]:
        return [w for w in WINDOWS if self.of("requests", w) is not None or self.of("tokens", w) is not None]


class Budget(NamedTuple):
    """One limit of one window, and how much of it is used: what the RateLimit headers describe."""

    kind: str  # requests | tokens
    window: str  # minute | day
    limit: int
    used: int
    reset_in: float  # seconds until the window starts again

    @property
    def name(self) -> str:
        return f"{self.kind}_per_{self.window}"


@dataclass
class Reservation:
    caller: str
    tokens: int
    keys: list[str]  # the usage items counted (one per window)
    headers: dict[str, str] = field(default_factory=dict)


class QuotaExceeded(RateLimited):
    """The caller's own budget is spent (429, code quota_exceeded), as opposed to Mistral rate-limiting us."""


_limits_cache: dict[str, tuple[float, Limits | None]] = {}
# The wall clock that places a request in its window (a name of its own so tests can pin it mid-window).
wall_clock = time.time


def reset() -> None:
    _limits_cache.clear()


def enabled() -> bool:
    return bool(settings().quota_table_name)


def limits_key(caller: str) -> str:
    """The item holding a key's limits (`default` applies to every key without its own)."""
    return f"limits#{caller}"


def usage_key(caller: str, window: str, now: float) -> tuple[str, float]:
    """The item counting a key's usage in the current window, and the seconds until the window ends."""
    length = WINDOWS[window]
    start = int(now // length * length)
    return f"usage#{caller}#{window}#{start}", start + length - now


def estimate_tokens(body: dict[str, Any]) -> int:
    """An upper bound of what Mistral can bill for the request: its prompt bound plus the completions it allows.

    Mistral's tokenizers (byte-level BPE, or SentencePiece with byte fallback) never make a text token of less
    than one UTF-8 byte, so the text of a request costs at most its UTF-8 size; the request's JSON with
    non-ASCII escaped (every field, tools, schemas, tool call arguments, prediction...) is at least that, and
    its punctuation outweighs the few control tokens of a chat template, for which a margin is added anyway.
    Images cost a fixed, generous amount each (not their base64 size). A completion is `max_tokens` (or
    QUOTA_DEFAULT_COMPLETION_TOKENS when unset: the one estimate here, see the README) times `n`.
    """
    media = _media_tokens(body)
    prompt = len(json.dumps(_without_media(body))) + TEMPLATE_TOKENS * (1 + _count(body.get("messages")))
    if "input" in body:
        return prompt + media  # embeddings: no completion
    completion = _whole(body.get("max_tokens"))
    if completion is None:
        completion = settings().quota_default_completion_tokens
    return prompt + media + completion * max(1, _whole(body.get("n")) or 1)


def _whole(value: Any) -> int | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value >= 0:
        return int(value)
    return None


def _count(value: Any) -> int:
    return len(value) if isinstance(value, list) else 0


def _parts(body: dict[str, Any]) -> list[Any]:
    messages = body.get("messages")
    if not isinstance(messages, list):
        return []
    contents = [message.get("content") for message in messages if isinstance(message, dict)]
    return [part for content in contents if isinstance(content, list) for part in content]


def _media_tokens(body: dict[str, Any]) -> int:
    kinds = [part.get("type") for part in _parts(body) if isinstance(part, dict)]
    return sum(MEDIA_TOKENS.get(kind, 0) for kind in kinds if isinstance(kind, str))


def _without_media(body: dict[str, Any]) -> dict[str, Any]:
    """The body with image and document parts reduced to their type (they are counted by MEDIA_TOKENS)."""
    if not any(isinstance(part, dict) and part.get("type") in MEDIA_TOKENS for part in _parts(body)):
        return body

    def part(value: Any) -> Any:
        return {"type": value["type"]} if isinstance(value, dict) and value.get("type") in MEDIA_TOKENS else value

    def message(value: Any) -> Any:
        if isinstance(value, dict) and isinstance(value.get("content"), list):
            return {**value, "content": [part(item) for item in value["content"]]}
        return value

    return {**body, "messages": [message(item) for item in body["messages"]]}


def limits_for(caller: str) -> Limits | None:
    now = time.monotonic()
    cached = _limits_cache.get(caller)
    if cached and cached[0] > now:
        return cached[1]
    limits = _read_limits(limits_key(caller)) or _read_limits(limits_key("default"))
    _limits_cache[caller] = (now + LIMITS_CACHE_SECONDS, limits)
    return limits


def reserve(caller: str | None, tokens: int) -> Reservation | None:
    """Count one request and reserve `tokens` in every window of the caller's limits, or raise 429."""
    limits = _limits(caller)
    if caller is None or limits is None:
        return None
    now = wall_clock()
    reservation = Reservation(caller, tokens, [])
    budgets: list[Budget] = []
    for window in limits.windows():
        key, reset_in = usage_key(caller, window, now)
        try:
            used = _add(key, window, tokens, limits, now)
        except _Rejected as rejected:
            _adjust(reservation, requests=-1, tokens=-tokens)  # undo the windows already counted
            observability.count(observability.QUOTA_REJECTIONS)
            limit = limits.of(rejected.kind, window) or 0
            spent = Budget(rejected.kind, window, limit, limit, reset_in)  # used up, by definition
            logger.append_keys(quota_exceeded=spent.name)
            raise QuotaExceeded(
                f"This key's {spent.name.replace('_', ' ')} budget is spent; retry after the window resets.",
                code="quota_exceeded",
                retry_after_seconds=math.ceil(reset_in),
                headers=_headers([spent]),
            ) from None
        except Exception as error:  # fail open
            _failed("reserve", error)
            continue
        reservation.keys.append(key)
        budgets += _budgets(limits, window, used, reset_in)
    reservation.headers = _headers(budgets)
    return reservation


def settle(reservation: Reservation | None, actual_tokens: int) -> None:
    """Correct the reservation to what the answer really used (usually a refund)."""
    if reservation is not None and actual_tokens != reservation.tokens:
        _adjust(reservation, requests=0, tokens=actual_tokens - reservation.tokens)


def release(reservation: Reservation | None) -> None:
    """The upstream call failed: give back the tokens (the request still counts as made)."""
    if reservation is not None and reservation.tokens:
        _adjust(reservation, requests=0, tokens=-reservation.tokens)


class Spending:
    """One request's token budget: reserved when built (429 when spent), then either settled to what the
    answer used or released. As a `with` block, leaving it by an exception (or without settling) releases."""

    def __init__(self, caller: str | None, body: dict[str, Any] | None) -> None:
        self.reservation = reserve(caller, estimate_tokens(body)) if body is not None and enabled() else None
        self._done = False

    @property
    def headers(self) -> dict[str, str]:
        return self.reservation.headers if self.reservation else {}

    @property
    def reserved_tokens(self) -> int:
        return self.reservation.tokens if self.reservation else 0

    def settle(self, tokens_used: int) -> None:
        if not self._done:
            self._done = True
            settle(self.reservation, tokens_used)

    def release(self) -> None:
        if not self._done:
            self._done = True
            release(self.reservation)

    def __enter__(self) -> Spending:
        return self

    def __exit__(self, *_: object) -> None:
        self.release()  # a no-op once settled


def peek(caller: str | None) -> dict[str, str]:
    """RateLimit headers for an answer that spent nothing (a free cache hit)."""
    limits = _limits(caller)
    if caller is None or limits is None:
        return {}
    now = wall_clock()
    keys = {window: usage_key(caller, window, now) for window in limits.windows()}
    table = settings().quota_table_name
    try:
        response = aws.client("dynamodb").batch_get_item(
            RequestItems={table: {"Keys": [{"pk": {"S": key}} for key, _ in keys.values()]}}
        )
        items = {item["pk"]["S"]: item for item in response["Responses"].get(table, [])}
    except Exception as error:
        _failed("peek", error)
        return {}
    budgets: list[Budget] = []
    for window, (key, reset_in) in keys.items():
        budgets += _budgets(limits, window, _counts(items.get(key, {})), reset_in)
    return _headers(budgets)


# --- DynamoDB ----------------------------------------------------------------------------------------------


class _Rejected(Exception):
    def __init__(self, kind: str) -> None:
        self.kind = kind  # the budget that refused: requests | tokens


def _limits(caller: str | None) -> Limits | None:
    return limits_for(caller) if caller and enabled() else None


def _add(key: str, window: str, tokens: int, limits: Limits, now: float) -> dict[str, int]:
    """Count one request and `tokens` in `key`, only if both still fit their limits (atomically)."""
    conditions, values = [], {":requests": {"N": "1"}, ":tokens": {"N": str(tokens)}}
    for kind, amount in (("requests", 1), ("tokens", tokens)):
        limit = limits.of(kind, window)
        if limit is None:
            continue
        if amount > limit:
            raise _Rejected(kind)
        conditions.append(f"(attribute_not_exists({kind}) OR {kind} <= :max_{kind})")
        values[f":max_{kind}"] = {"N": str(limit - amount)}
    values[":expires"] = {"N": str(int(now) + WINDOWS[window] + 3_600)}
    arguments: dict[str, Any] = {
        "TableName": settings().quota_table_name,
        "Key": {"pk": {"S": key}},
        "UpdateExpression": "ADD requests :requests, tokens :tokens "
        "SET expires_at = if_not_exists(expires_at, :expires)",
        "ExpressionAttributeValues": values,
        "ReturnValues": "UPDATED_NEW",
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }
    if conditions:
        arguments["ConditionExpression"] = " AND ".join(conditions)
    try:
        return _counts(aws.client("dynamodb").update_item(**arguments)["Attributes"])
    except Exception as error:
        if aws.error_code(error) != "ConditionalCheckFailedException":
            raise
        # Which budget refused, from the counts DynamoDB returned with the failed condition.
        response = getattr(error, "response", None)
        used = _counts(response.get("Item", {}) if isinstance(response, dict) else {})
        request_limit = limits.of("requests", window)
        full = request_limit is not None and used["requests"] + 1 > request_limit
        raise _Rejected("requests" if full else "tokens") from None


def _counts(item: dict[str, Any]) -> dict[str, int]:
    return {kind: int(item.get(kind, {}).get("N", 0)) for kind in ("requests", "tokens")}


def _budgets(limits: Limits, window: str, used: dict[str, int], reset_in: float) -> list[Budget]:
    return [
        Budget(kind, window, limit, used[kind], reset_in)
        for kind in ("requests", "tokens")
        if (limit := limits.of(kind, window)) is not None
    ]


def _adjust(reservation: Reservation, *, requests: int, tokens: int) -> None:
    for key in reservation.keys:
        try:
            aws.client("dynamodb").update_item(
                TableName=settings().quota_table_name,
                Key={"pk": {"S": key}},
                UpdateExpression="ADD requests :requests, tokens :tokens",
                ExpressionAttributeValues={":requests": {"N": str(requests)}, ":tokens": {"N": str(tokens)}},
            )
        except Exception as error:
            _failed("adjust", error)


def _read_limits(key: str) -> Limits | None:
    try:
        item = (
            aws.client("dynamodb").get_item(TableName=settings().quota_table_name, Key={"pk": {"S": key}}).get("Item")
        )
    except Exception as error:
        _failed("limits", error)
        return None
    if not item:
        return None
    values = {name: int(item[name]["N"]) for name in LIMIT_FIELDS if name in item and "N" in item[name]}
    return Limits(values) if values else None


def _headers(budgets: list[Budget]) -> dict[str, str]:
    """IETF RateLimit headers for the tightest budget (least remaining, as a share of its limit)."""
    if not budgets:
        return {}
    tightest = min(budgets, key=lambda b: (max(0, b.limit - b.used) / max(1, b.limit), -b.reset_in))
    return {
        "RateLimit-Limit": str(tightest.limit),
        "RateLimit-Remaining": str(max(0, tightest.limit - tightest.used)),
        "RateLimit-Reset": str(math.ceil(tightest.reset_in)),
        "RateLimit-Policy": ", ".join(f"{b.limit};w={WINDOWS[b.window]};name={b.name}" for b in budgets),
    }


def _failed(operation: str, error: Exception) -> None:
    code = aws.error_code(error)
    logger.warning("quota table unavailable, failing open", extra={"operation": operation, "error_code": code})
    observability.count(observability.QUOTA_ERRORS)
