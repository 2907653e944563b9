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

import contextvars
import json
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from mistral_gateway.platform import aws, observability
from mistral_gateway.platform.config import Settings
from mistral_gateway.platform.errors import RateLimited, UpstreamTimeout
from mistral_gateway.platform.observability import logger

WINDOWS = {"minute": 60, "day": 86_400}
UNITS = ("requests", "tokens")  # what a budget counts
LIMIT_FIELDS = ("requests_per_minute", "tokens_per_minute", "requests_per_day", "tokens_per_day")
# Beside the budgets, in the same item and the same cached read: the models the key may use (a string set;
# absent or empty = all the operator allows) and when the key stops working (epoch seconds: a rotated key's
# grace period ends, a revoked key at once). `mistral-gateway keys` writes them (local/gateway_dev/keys.py).
MODELS_FIELD = "models"
KEY_EXPIRES_FIELD = "key_expires_at"  # not the table's TTL attribute: the item must outlive the key's end
# Control tokens of a chat template ([INST], [/INST], [TOOL_CALLS]...), per request and per message: a margin.
TEMPLATE_TOKENS = 16
# A content part whose cost is not its size. An image is at most a few thousand tokens on every Mistral vision
# model (a 1024x1024 image in 16 px patches is 4,096 plus row breaks); a document's pages are each about an
# image, and its page count cannot be known from the request: an estimate (README).
# Where a count read from a request stops growing: far above any budget, and small enough that a product of
# two (max_tokens x n) stays within DynamoDB's 38 significant digits.
MAX_WHOLE = 10**12
MEDIA_TOKENS = {"image_url": 8_192, "input_image": 8_192, "document_url": 65_536, "file": 65_536}
# The response header that says the gateway capped the completion Mistral may write (a request without
# `max_tokens` whose key has a token budget): its value is the `max_tokens` sent upstream.
CAPPED_HEADER = "X-Gateway-Max-Tokens-Capped"
# The cap of the request being served in this context, for the code that builds the upstream call.
_CAP: contextvars.ContextVar[int | None] = contextvars.ContextVar("completion_cap", default=None)


def completion_cap() -> int | None:
    """The `max_tokens` the budget imposes on the request being served here (None: no cap)."""
    return _CAP.get()


def cut_at_cap(data: dict[str, Any], cap: int | None) -> bool:
    """Whether an answer written under a budget's cap may have been cut by it: it is then not the answer to
    the request as sent (which set no `max_tokens`), so it is never stored (service, streaming)."""
    if cap is None:
        return False
    choices = data.get("choices")
    return not isinstance(choices, list) or any(
        not isinstance(choice, dict) or choice.get("finish_reason") in ("length", "model_length", None)
        for choice in choices
    )


@dataclass(frozen=True)
class Limits:
    values: dict[str, int]  # e.g. {"tokens_per_minute": 10000}
    models: frozenset[str] = frozenset()  # the models the key may use; empty: all the operator allows
    key_expires_at: int | None = None  # epoch seconds after which the key is refused (rotation, revocation)

    def allows(self, model: str) -> bool:
        return not self.models or model in self.models

    def expired(self, now: float) -> bool:
        return self.key_expires_at is not None and now >= self.key_expires_at

    def of(self, unit: str, window: str) -> int | None:
        return self.values.get(f"{unit}_per_{window}")

    def windows(self) -> list[str]:
        return [w for w in WINDOWS if any(self.of(unit, w) is not None for unit in UNITS)]


class Budget(NamedTuple):
    """One limit of one window, and how much of it is used: what the RateLimit headers describe."""

    unit: str  # requests | tokens
    window: str  # minute | day
    limit: int
    used: int
    reset_in: float  # seconds until the window starts again

    @property
    def name(self) -> str:
        return f"{self.unit}_per_{self.window}"


@dataclass
class Reservation:
    caller: str
    tokens: int
    keys: list[str]  # the usage items counted (one per window)
    headers: dict[str, str] = field(default_factory=dict)


class QuotaExceeded(RateLimited):
    """The caller's own budget is spent (429, code quota_exceeded), as opposed to Mistral rate-limiting us."""


def limits_key(caller: str) -> str:
    """The item holding a key's limits (`default` applies to every key without its own)."""
    return f"limits#{caller}"


def usage_key(caller: str, window: str, now: float) -> tuple[str, float]:
    """The item counting a key's usage in the current window, and the seconds until the window ends."""
    length = WINDOWS[window]
    start = int(now // length * length)
    return f"usage#{caller}#{window}#{start}", start + length - now


def estimate_tokens(body: dict[str, Any], default_completion_tokens: int) -> int:
    """An upper bound of what Mistral can bill for the request: its prompt bound plus the completions it allows.

    Mistral's tokenizers (byte-level BPE, or SentencePiece with byte fallback) never make a text token of less
    than one UTF-8 byte, so the text of a request costs at most its UTF-8 size; the request's JSON with
    non-ASCII escaped (every field, tools, schemas, tool call arguments, prediction...) is at least that, and
    its punctuation outweighs the few control tokens of a chat template, for which a margin is added anyway.
    Images cost a fixed, generous amount each (not their base64 size). A completion is `max_tokens` (or
    `default_completion_tokens` (QUOTA_DEFAULT_COMPLETION_TOKENS) when unset: the one estimate here, see the
    README) times `n`.
    """
    prompt = prompt_tokens(body)
    if "input" in body:
        return prompt  # embeddings: no completion
    completion = _whole(body.get("max_tokens"))
    if completion is None:
        completion = default_completion_tokens
    return prompt + completion * choices(body)


def prompt_tokens(body: dict[str, Any]) -> int:
    """An upper bound of the prompt's tokens (see estimate_tokens)."""
    media = _media_tokens(body)
    return len(json.dumps(_without_media(body))) + TEMPLATE_TOKENS * (1 + _count(body.get("messages"))) + media


def choices(body: dict[str, Any]) -> int:
    return max(1, _whole(body.get("n")) or 1)


def _whole(value: Any) -> int | None:
    # An int is compared as an int: a huge one overflows the float conversion math.isfinite makes.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return min(int(value), MAX_WHOLE) if value >= 0 else None


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


# --- the policy ----------------------------------------------------------------------------------------------


class StoreUnavailable(Exception):
    """The usage store failed (throttled, unreachable, denied): budgets fail open."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class Refused(Exception):
    """An addition the store refused because a unit would pass its ceiling; `used` is what the item held."""

    def __init__(self, used: dict[str, int]) -> None:
        super().__init__("over budget")
        self.used = used


class UsageStore(Protocol):
    """Where limits and usage counts live: DynamoDB (DynamoUsage) in the gateway, a dict in unit tests.
    Every method raises StoreUnavailable when the store fails."""

    def limits(self, key: str) -> dict[str, Any] | None:
        """The limit fields of `limits#<key id>` (None: no such item), with `models` (a list) and
        `key_expires_at` when the item has them."""
        ...

    def add(self, key: str, counts: dict[str, int], ceilings: dict[str, int], expires_at: int) -> dict[str, int]:
        """Atomically add `counts` to the item unless a unit's current total is above its ceiling (then raise
        Refused with the item's totals); returns the new totals."""
        ...

    def adjust(self, key: str, counts: dict[str, int]) -> None:
        """Add (possibly negative) `counts`, unconditionally."""
        ...

    def totals(self, keys: list[str]) -> dict[str, dict[str, int]]:
        """The totals of each existing item among `keys`."""
        ...


class Budgets:
    """The callers' budgets: reserve before the upstream call (429 when spent), settle or release after."""

    def __init__(self, usage: UsageStore, settings: Settings, *, clock: Callable[[], float] = time.time) -> None:
        self.usage = usage
        self.settings = settings
        self.clock = clock
        self._limits: dict[str, tuple[float, Limits | None]] = {}
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return bool(self.settings.quota_table_name)

    def limits_for(self, caller: str) -> Limits | None:
        """The caller's limits (or the default's), read at most every QUOTA_LIMITS_MAX_AGE_SECONDS."""
        now = self.clock()
        with self._lock:
            cached = self._limits.get(caller)
        if cached and cached[0] > now:
            return cached[1]
        limits = self._read_limits(limits_key(caller))
        if limits is None or not limits.values:  # no budgets of its own: `default`'s (and its models, if none)
            default = self._read_limits(limits_key("default"))
            limits = _merged(limits, default) if limits is not None else default
        with self._lock:
            self._limits[caller] = (now + self.settings.quota_limits_max_age_seconds, limits)
        return limits

    def estimate(self, body: dict[str, Any]) -> int:
        return estimate_tokens(body, self.settings.quota_default_completion_tokens)

    def spending(self, caller: str | None, body: dict[str, Any] | None, *, cappable: bool = False) -> Spending:
        """One request's spending of `body`'s worst-case cost (None: not budgeted); raises 429 when spent.

        `cappable`: the route sends `max_tokens` to Mistral (chat, FIM, their streams, batch items, agents
        completions). A request there without `max_tokens`, from a key with a token budget, gets one: at most
        QUOTA_DEFAULT_COMPLETION_TOKENS, and no more than the budget has room for. Mistral cannot write past
        it, so the reservation is a true upper bound (issue 21); the Spending's `cap` says what was sent."""
        if body is None or not self.enabled:
            return Spending(self, None)
        limits = self._limits_of(caller)
        if not (cappable and caller and limits and _whole(body.get("max_tokens")) is None and _tokens_limited(limits)):
            return Spending(self, self.reserve(caller, self.estimate(body)))
        prompt, n = prompt_tokens(body), choices(body)
        cap = self.settings.quota_default_completion_tokens
        try:
            return Spending(self, self._reserve(caller, limits, prompt + cap * n), cap)
        except _Refusal:
            pass  # not room for the default: what is left, if anything
        room = self._room(caller, limits)
        if room is not None and room - prompt >= n:
            cap = min(cap, (room - prompt) // n)
        return Spending(self, self.reserve(caller, prompt + cap * n), cap)  # 429 when even that does not fit

    def _room(self, caller: str, limits: Limits) -> int | None:
        """The tokens left in the caller's tightest token budget (None: unknown, the store failed)."""
        now = self.clock()
        keys = {window: usage_key(caller, window, now)[0] for window in limits.windows()}
        try:
            totals = self.usage.totals(list(keys.values()))
        except StoreUnavailable as error:
            _failed("room", error)
            return None
        rooms = [
            limit - totals.get(key, _zero())["tokens"]
            for window, key in keys.items()
            if (limit := limits.of("tokens", window)) is not None
        ]
        return min(rooms) if rooms else None

    def reserve(self, caller: str | None, tokens: int) -> Reservation | None:
        """Count one request and reserve `tokens` in every window of the caller's limits, or raise 429."""
        limits = self._limits_of(caller)
        if caller is None or limits is None:
            return None
        try:
            return self._reserve(caller, limits, tokens)
        except _Refusal as refusal:
            observability.count(observability.QUOTA_REJECTIONS)
            spent = refusal.budget
            observability.log_keys(quota_exceeded=spent.name)
            raise QuotaExceeded(
                f"This key's {spent.name.replace('_', ' ')} budget is spent; retry after the window resets.",
                code="quota_exceeded",
                retry_after_seconds=math.ceil(spent.reset_in),
                headers=_headers([spent]),
            ) from None

    def _reserve(self, caller: str, limits: Limits, tokens: int) -> Reservation:
        """Count one request and reserve `tokens` in every window, atomically per window, or raise _Refusal
        (having undone the windows already counted)."""
        now = self.clock()
        reservation = Reservation(caller, tokens, [])
        budgets: list[Budget] = []
        for window in limits.windows():
            key, reset_in = usage_key(caller, window, now)
            try:
                used = self._add(key, window, tokens, limits, now)
            except _OverBudget as over:
                self._adjust(reservation, requests=-1, tokens=-tokens)  # undo the windows already counted
                limit = limits.of(over.unit, window) or 0
                raise _Refusal(Budget(over.unit, window, limit, limit, reset_in)) from None  # used up, by definition
            except StoreUnavailable as error:  # fail open
                _failed("reserve", error)
                continue
            reservation.keys.append(key)
            budgets += _budgets(limits, window, used, reset_in)
        reservation.headers = _headers(budgets)
        return reservation

    def charge(self, caller: str | None, tokens: int) -> None:
        """Tokens spent outside a request (a batch job's, settled when it completes): added to every window of
        the caller's limits, over the limit or not (they are spent); the caller's next requests see them."""
        limits = self._limits_of(caller)
        if caller is None or limits is None or tokens <= 0 or not self.enabled:
            return
        now = self.clock()
        keys = [usage_key(caller, window, now)[0] for window in limits.windows()]
        self._adjust(Reservation(caller, tokens, keys), requests=0, tokens=tokens)

    def settle(self, reservation: Reservation | None, actual_tokens: int) -> None:
        """Correct the reservation to what the answer really used (usually a refund)."""
        if reservation is not None and actual_tokens != reservation.tokens:
            self._adjust(reservation, requests=0, tokens=actual_tokens - reservation.tokens)

    def release(self, reservation: Reservation | None) -> None:
        """The upstream call failed: give back the tokens (the request still counts as made)."""
        if reservation is not None and reservation.tokens:
            self._adjust(reservation, requests=0, tokens=-reservation.tokens)

    def peek(self, caller: str | None) -> dict[str, str]:
        """RateLimit headers for an answer that spent nothing (a free cache hit)."""
        limits = self._limits_of(caller)
        if caller is None or limits is None:
            return {}
        now = self.clock()
        keys = {window: usage_key(caller, window, now) for window in limits.windows()}
        try:
            totals = self.usage.totals([key for key, _ in keys.values()])
        except StoreUnavailable as error:
            _failed("peek", error)
            return {}
        budgets: list[Budget] = []
        for window, (key, reset_in) in keys.items():
            budgets += _budgets(limits, window, totals.get(key, _zero()), reset_in)
        return _headers(budgets)

    def _limits_of(self, caller: str | None) -> Limits | None:
        return self.limits_for(caller) if caller and self.enabled else None

    def _read_limits(self, key: str) -> Limits | None:
        try:
            values = self.usage.limits(key)
        except StoreUnavailable as error:
            _failed("limits", error)
            return None
        if not values:
            return None
        values = dict(values)
        models = values.pop(MODELS_FIELD, None)
        expires = values.pop(KEY_EXPIRES_FIELD, None)
        return Limits(
            {name: int(value) for name, value in values.items()},
            frozenset(models) if isinstance(models, list | set | frozenset) else frozenset(),
            int(expires) if isinstance(expires, int) else None,
        )

    def _add(self, key: str, window: str, tokens: int, limits: Limits, now: float) -> dict[str, int]:
        """Count one request and `tokens` in `key`, only if both still fit their limits (atomically)."""
        counts = {"requests": 1, "tokens": tokens}
        ceilings: dict[str, int] = {}
        for unit, amount in counts.items():
            limit = limits.of(unit, window)
            if limit is None:
                continue
            if amount > limit:
                raise _OverBudget(unit)
            ceilings[unit] = limit - amount
        try:
            return self.usage.add(key, counts, ceilings, int(now) + WINDOWS[window] + 3_600)
        except Refused as refused:
            # Which budget refused, from the totals the store held.
            request_limit = limits.of("requests", window)
            full = request_limit is not None and refused.used["requests"] + 1 > request_limit
            raise _OverBudget("requests" if full else "tokens") from None

    def _adjust(self, reservation: Reservation, *, requests: int, tokens: int) -> None:
        for key in reservation.keys:
            try:
                self.usage.adjust(key, {"requests": requests, "tokens": tokens})
            except StoreUnavailable as error:
                _failed("adjust", error)


class Spending:
    """One request's token budget: reserved when built (429 when spent), then either settled to what the
    answer used or released. As a `with` block, leaving it by an exception (or without settling) releases."""

    def __init__(self, budgets: Budgets, reservation: Reservation | None, cap: int | None = None) -> None:
        self.reservation = reservation
        self.cap = cap if reservation is not None else None  # the max_tokens the budget imposes (None: none)
        self._budgets = budgets
        self._done = False
        self._token: contextvars.Token[int | None] | None = None

    @property
    def headers(self) -> dict[str, str]:
        headers = dict(self.reservation.headers) if self.reservation else {}
        if self.cap is not None:
            headers[CAPPED_HEADER] = str(self.cap)
        return headers

    def keep(self) -> None:
        """The request was abandoned after Mistral may have started writing (a timeout): what Mistral bills is
        unknown, so the whole reservation, its upper bound, stays spent."""
        self.settle(self.reserved_tokens)

    @property
    def reserved_tokens(self) -> int:
        return self.reservation.tokens if self.reservation else 0

    def settle(self, tokens_used: int) -> None:
        if not self._done:
            self._done = True
            self._budgets.settle(self.reservation, tokens_used)

    def release(self) -> None:
        if not self._done:
            self._done = True
            self._budgets.release(self.reservation)

    def __enter__(self) -> Spending:
        self._token = _CAP.set(self.cap)  # what the upstream call reads (completion_cap)
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if self._token is not None:
            _CAP.reset(self._token)
            self._token = None
        if kind is not None and issubclass(kind, UpstreamTimeout):
            self.keep()  # Mistral may be writing (and will bill) the answer nobody waits for
        self.release()  # a no-op once settled


def _merged(own: Limits, default: Limits | None) -> Limits:
    """A key's own item over the `default` item: budgets and models each from the key's item when it has any."""
    if default is None:
        return own
    return Limits(own.values or default.values, own.models or default.models, own.key_expires_at)


class _OverBudget(Exception):
    def __init__(self, unit: str) -> None:
        self.unit = unit  # the budget that refused: requests | tokens


class _Refusal(Exception):
    def __init__(self, budget: Budget) -> None:
        self.budget = budget  # the spent budget


def _tokens_limited(limits: Limits) -> bool:
    return any(limits.of("tokens", window) is not None for window in WINDOWS)


def _zero() -> dict[str, int]:
    return dict.fromkeys(UNITS, 0)


def _budgets(limits: Limits, window: str, used: dict[str, int], reset_in: float) -> list[Budget]:
    return [
        Budget(unit, window, limit, used[unit], reset_in)
        for unit in UNITS
        if (limit := limits.of(unit, window)) is not None
    ]


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


def _failed(operation: str, error: StoreUnavailable) -> None:
    logger.warning("quota table unavailable, failing open", extra={"operation": operation, "error_code": error.code})
    observability.count(observability.QUOTA_ERRORS)


# --- DynamoDB ----------------------------------------------------------------------------------------------


class DynamoUsage:
    """The quota table: one item per caller's limits, one per caller and window counting usage."""

    def __init__(self, dynamodb: Callable[[], Any], table_name: str) -> None:
        self._dynamodb = dynamodb  # built on first use: a gateway without budgets never builds it
        self.table_name = table_name

    def limits(self, key: str) -> dict[str, Any] | None:
        try:
            item = self._dynamodb().get_item(TableName=self.table_name, Key={"pk": {"S": key}}).get("Item")
        except aws.errors() as error:
            raise StoreUnavailable(aws.error_code(error)) from None
        if not item:
            return None
        found: dict[str, Any] = {name: int(item[name]["N"]) for name in LIMIT_FIELDS if "N" in item.get(name, {})}
        if MODELS_FIELD in item and "SS" in item[MODELS_FIELD]:
            found[MODELS_FIELD] = sorted(item[MODELS_FIELD]["SS"])
        if "N" in item.get(KEY_EXPIRES_FIELD, {}):
            found[KEY_EXPIRES_FIELD] = int(item[KEY_EXPIRES_FIELD]["N"])
        return found

    def add(self, key: str, counts: dict[str, int], ceilings: dict[str, int], expires_at: int) -> dict[str, int]:
        values = {f":{unit}": {"N": str(amount)} for unit, amount in counts.items()}
        values |= {f":max_{unit}": {"N": str(ceiling)} for unit, ceiling in ceilings.items()}
        values[":expires"] = {"N": str(expires_at)}
        arguments: dict[str, Any] = {
            "TableName": self.table_name,
            "Key": {"pk": {"S": key}},
            "UpdateExpression": "ADD requests :requests, tokens :tokens "
            "SET expires_at = if_not_exists(expires_at, :expires)",
            "ExpressionAttributeValues": values,
            "ReturnValues": "UPDATED_NEW",
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        if ceilings:
            arguments["ConditionExpression"] = " AND ".join(
                f"(attribute_not_exists({unit}) OR {unit} <= :max_{unit})" for unit in ceilings
            )
        try:
            return _counts(self._dynamodb().update_item(**arguments)["Attributes"])
        except aws.errors() as error:
            if aws.error_code(error) != "ConditionalCheckFailedException":
                raise StoreUnavailable(aws.error_code(error)) from None
            response = getattr(error, "response", None)
            raise Refused(_counts(response.get("Item", {}) if isinstance(response, dict) else {})) from None

    def adjust(self, key: str, counts: dict[str, int]) -> None:
        try:
            self._dynamodb().update_item(
                TableName=self.table_name,
                Key={"pk": {"S": key}},
                UpdateExpression="ADD requests :requests, tokens :tokens",
                ExpressionAttributeValues={f":{unit}": {"N": str(amount)} for unit, amount in counts.items()},
            )
        except aws.errors() as error:
            raise StoreUnavailable(aws.error_code(error)) from None

    def totals(self, keys: list[str]) -> dict[str, dict[str, int]]:
        try:
            response = self._dynamodb().batch_get_item(
                RequestItems={self.table_name: {"Keys": [{"pk": {"S": key}} for key in keys]}}
            )
        except aws.errors() as error:
            raise StoreUnavailable(aws.error_code(error)) from None
        return {item["pk"]["S"]: _counts(item) for item in response["Responses"].get(self.table_name, [])}


def _counts(item: dict[str, Any]) -> dict[str, int]:
    return {unit: int(item.get(unit, {}).get("N", 0)) for unit in UNITS}
