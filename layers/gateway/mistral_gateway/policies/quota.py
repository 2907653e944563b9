"""Per-caller budgets (requests and tokens per minute and per day), exact across Lambda containers.

Limits live in the quota table, per caller key id (`limits#<key id>`, or `limits#default` for every caller
without its own item): attributes requests_per_minute, tokens_per_minute, requests_per_day, tokens_per_day;
a missing attribute means no limit. `python -m gateway_dev.ops.quota` (or any DynamoDB client) writes them.

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
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mistral_gateway.platform import observability
from mistral_gateway.platform.config import Settings
from mistral_gateway.platform.errors import RateLimited, UpstreamTimeout
from mistral_gateway.platform.observability import logger
from mistral_gateway.policies import key_limits, token_bound, usage_store
from mistral_gateway.policies.usage_store import KEY_EXPIRES_FIELD, MODELS_FIELD

# The response header that says the gateway capped the completion Mistral may write (a request without
# `max_tokens` whose key has a token budget): its value is the `max_tokens` sent upstream.
CAPPED_HEADER = "X-Gateway-Max-Tokens-Capped"
# A limits read that failed leaves the key unbudgeted (open) for this long at most, not QUOTA_LIMITS_MAX_AGE_SECONDS:
# the budgets and a revoked key's end apply again as soon as the quota table answers.
FAILED_LIMITS_RETRY_SECONDS = 5
# The cap of the request being served in this context, for the code that builds the upstream call.
_CAP: contextvars.ContextVar[int | None] = contextvars.ContextVar("completion_cap", default=None)


def completion_cap() -> int | None:
    """The `max_tokens` the budget imposes on the request being served here (None: no cap)."""
    return _CAP.get()


def cut_at_cap(data: dict[str, Any], cap: int | None) -> bool:
    """Whether an answer written under a budget's cap may have been cut by it: it is then not the answer to
    the request as sent (which set no `max_tokens`), so it is never stored (flow/completions.py, flow/streaming.py)."""
    if cap is None:
        return False
    choices = data.get("choices")
    return not isinstance(choices, list) or any(
        not isinstance(choice, dict) or choice.get("finish_reason") in ("length", "model_length", None)
        for choice in choices
    )


@dataclass
class Reservation:
    caller: str
    tokens: int
    keys: list[str]  # the usage items counted (one per window)
    headers: dict[str, str] = field(default_factory=dict)


class QuotaExceeded(RateLimited):
    """The caller's own budget is spent (429, code quota_exceeded), as opposed to Mistral rate-limiting us."""


# --- the policy ----------------------------------------------------------------------------------------------


class Budgets:
    """The callers' budgets: reserve before the upstream call (429 when spent), settle or release after."""

    def __init__(
        self, usage: usage_store.UsageStore, settings: Settings, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.usage = usage
        self.settings = settings
        self.clock = clock
        self._limits: dict[str, tuple[float, key_limits.Limits | None]] = {}
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return bool(self.settings.quota_table_name)

    def limits_for(self, caller: str) -> key_limits.Limits | None:
        """The caller's limits (or the default's), read at most every QUOTA_LIMITS_MAX_AGE_SECONDS (after a failed
        read: FAILED_LIMITS_RETRY_SECONDS)."""
        now = self.clock()
        with self._lock:
            cached = self._limits.get(caller)
        if cached and cached[0] > now:
            return cached[1]
        own, default = key_limits.limits_key(caller), key_limits.limits_key("default")
        found = self._read_limits([own, default])  # one round trip for both, the default needed or not
        max_age = self.settings.quota_limits_max_age_seconds
        if found is None:  # the store failed: open for now, but asked again soon rather than after max_age
            limits, max_age = None, min(max_age, FAILED_LIMITS_RETRY_SECONDS)
        else:
            limits = found.get(own)
            if limits is None or not limits.values:  # no budgets of its own: `default`'s (and its models, if none)
                limits = key_limits.merged(limits, found.get(default)) if limits is not None else found.get(default)
        with self._lock:
            self._limits[caller] = (now + max_age, limits)
        return limits

    def estimate(self, body: dict[str, Any]) -> int:
        return token_bound.estimate_tokens(body, self.settings.quota_default_completion_tokens)

    def spending(self, caller: str | None, body: dict[str, Any] | None, *, cappable: bool = False) -> Spending:
        """One request's spending of `body`'s worst-case cost (None: not budgeted); raises 429 when spent.

        `cappable`: the route sends `max_tokens` to Mistral (chat, FIM, their streams, batch items, agents
        completions). A request there without `max_tokens`, from a key with a token budget, gets one: at most
        QUOTA_DEFAULT_COMPLETION_TOKENS, and no more than the budget has room for. Mistral cannot write past
        it, so the reservation is a true upper bound (issue 21); the Spending's `cap` says what was sent."""
        if body is None or not self.enabled:
            return Spending(self, None)
        limits = self._limits_of(caller)
        if not (
            cappable
            and caller
            and limits
            and token_bound.max_tokens(body) is None
            and key_limits.tokens_limited(limits)
        ):
            return Spending(self, self.reserve(caller, self.estimate(body)))
        prompt, n = token_bound.prompt_tokens(body), token_bound.choices(body)
        cap = self.settings.quota_default_completion_tokens
        try:
            return Spending(self, self._reserve(caller, limits, prompt + cap * n), cap)
        except _Refusal:
            pass  # not room for the default: what is left, if anything
        room = self._room(caller, limits)
        if room is not None and room - prompt >= n:
            cap = min(cap, (room - prompt) // n)
        return Spending(self, self.reserve(caller, prompt + cap * n), cap)  # 429 when even that does not fit

    def _room(self, caller: str, limits: key_limits.Limits) -> int | None:
        """The tokens left in the caller's tightest token budget (None: unknown, the store failed)."""
        now = self.clock()
        keys = {window: key_limits.usage_key(caller, window, now)[0] for window in limits.windows()}
        try:
            totals = self.usage.totals(list(keys.values()))
        except usage_store.StoreUnavailable as error:
            _failed("room", error)
            return None
        rooms = [
            limit - totals.get(key, key_limits.zero())["tokens"]
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
                headers=key_limits.rate_limit_headers([spent]),
            ) from None

    def _reserve(self, caller: str, limits: key_limits.Limits, tokens: int) -> Reservation:
        """Count one request and reserve `tokens` in every window, atomically per window, or raise _Refusal
        (having undone the windows already counted)."""
        now = self.clock()
        reservation = Reservation(caller, tokens, [])
        budgets: list[key_limits.Budget] = []
        for window in limits.windows():
            key, reset_in = key_limits.usage_key(caller, window, now)
            try:
                used = self._add(key, window, tokens, limits, now)
            except _OverBudget as over:
                self._adjust(reservation, requests=-1, tokens=-tokens)  # undo the windows already counted
                limit = limits.of(over.unit, window) or 0
                raise _Refusal(
                    key_limits.Budget(over.unit, window, limit, limit, reset_in)
                ) from None  # used up, by definition
            except usage_store.StoreUnavailable as error:  # fail open
                _failed("reserve", error)
                continue
            reservation.keys.append(key)
            budgets += key_limits.budgets_of(limits, window, used, reset_in)
        reservation.headers = key_limits.rate_limit_headers(budgets)
        return reservation

    def charge(self, caller: str | None, tokens: int) -> None:
        """Tokens spent outside a request (a batch job's, settled when it completes): added to every window of
        the caller's limits, over the limit or not (they are spent); the caller's next requests see them."""
        limits = self._limits_of(caller)
        if caller is None or limits is None or tokens <= 0 or not self.enabled:
            return
        now = self.clock()
        keys = [key_limits.usage_key(caller, window, now)[0] for window in limits.windows()]
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
        keys = {window: key_limits.usage_key(caller, window, now) for window in limits.windows()}
        try:
            totals = self.usage.totals([key for key, _ in keys.values()])
        except usage_store.StoreUnavailable as error:
            _failed("peek", error)
            return {}
        budgets: list[key_limits.Budget] = []
        for window, (key, reset_in) in keys.items():
            budgets += key_limits.budgets_of(limits, window, totals.get(key, key_limits.zero()), reset_in)
        return key_limits.rate_limit_headers(budgets)

    def _limits_of(self, caller: str | None) -> key_limits.Limits | None:
        return self.limits_for(caller) if caller and self.enabled else None

    def _read_limits(self, keys: list[str]) -> dict[str, key_limits.Limits] | None:
        """The Limits of each of `keys` that has an item with anything in it (None: the store failed)."""
        try:
            items = self.usage.limits(keys)
        except usage_store.StoreUnavailable as error:
            _failed("limits", error)
            return None
        return {key: _as_limits(values) for key, values in items.items() if values}

    def _add(self, key: str, window: str, tokens: int, limits: key_limits.Limits, now: float) -> dict[str, int]:
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
            return self.usage.add(key, counts, ceilings, int(now) + key_limits.WINDOWS[window] + 3_600)
        except usage_store.Refused as refused:
            # Which budget refused, from the totals the store held.
            request_limit = limits.of("requests", window)
            full = request_limit is not None and refused.used["requests"] + 1 > request_limit
            raise _OverBudget("requests" if full else "tokens") from None

    def _adjust(self, reservation: Reservation, *, requests: int, tokens: int) -> None:
        for key in reservation.keys:
            try:
                self.usage.adjust(key, {"requests": requests, "tokens": tokens})
            except usage_store.StoreUnavailable as error:
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


class _OverBudget(Exception):
    def __init__(self, unit: str) -> None:
        self.unit = unit  # the budget that refused: requests | tokens


class _Refusal(Exception):
    def __init__(self, budget: key_limits.Budget) -> None:
        self.budget = budget  # the spent budget


def _failed(operation: str, error: usage_store.StoreUnavailable) -> None:
    logger.warning("quota table unavailable, failing open", extra={"operation": operation, "error_code": error.code})
    observability.count(observability.QUOTA_ERRORS)


def _as_limits(values: dict[str, Any]) -> key_limits.Limits:
    values = dict(values)
    models = values.pop(MODELS_FIELD, None)
    expires = values.pop(KEY_EXPIRES_FIELD, None)
    return key_limits.Limits(
        {name: int(value) for name, value in values.items()},
        frozenset(models) if isinstance(models, list | set | frozenset) else frozenset(),
        int(expires) if isinstance(expires, int) else None,
    )
