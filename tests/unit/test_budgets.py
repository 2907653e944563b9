"""The callers' budgets (quota.Budgets) on their own, against an in-memory usage store and a clock the test moves."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pytest

from mistral_gateway.platform.config import Settings
from mistral_gateway.policies import token_bound
from mistral_gateway.policies.key_limits import limits_key
from mistral_gateway.policies.quota import FAILED_LIMITS_RETRY_SECONDS, Budgets, QuotaExceeded
from mistral_gateway.policies.usage_store import Refused, StoreUnavailable

CALLER = "key-id-alice"
MINUTE_START = 1_800_000_000 // 86_400 * 86_400 + 600.0  # 00:10:00 UTC on some day


@dataclass
class MemoryUsage:
    """The UsageStore contract over dicts: atomic conditional adds, and a switch that makes it fail."""

    limit_items: dict[str, dict[str, int]] = field(default_factory=dict)
    counters: dict[str, dict[str, int]] = field(default_factory=dict)
    failing: bool = False
    limit_reads: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _check(self) -> None:
        if self.failing:
            raise StoreUnavailable("ThrottlingException")

    def limits(self, keys: list[str]) -> dict[str, dict[str, int]]:
        self.limit_reads += 1  # attempts, failed ones too
        self._check()
        return {key: self.limit_items[key] for key in keys if key in self.limit_items}

    def add(self, key: str, counts: dict[str, int], ceilings: dict[str, int], expires_at: int) -> dict[str, int]:
        self._check()
        with self._lock:
            item = self.counters.setdefault(key, {"requests": 0, "tokens": 0})
            if any(item[unit] > ceiling for unit, ceiling in ceilings.items()):
                raise Refused(dict(item))
            for unit, amount in counts.items():
                item[unit] += amount
            return dict(item)

    def adjust(self, key: str, counts: dict[str, int]) -> None:
        self._check()
        with self._lock:
            item = self.counters.setdefault(key, {"requests": 0, "tokens": 0})
            for unit, amount in counts.items():
                item[unit] += amount

    def totals(self, keys: list[str]) -> dict[str, dict[str, int]]:
        self._check()
        return {key: dict(self.counters[key]) for key in keys if key in self.counters}

    def used(self, window: str) -> dict[str, int]:
        """What the caller has used in the current `window` (the only one of its kind in these tests)."""
        found = [item for key, item in self.counters.items() if f"#{window}#" in key]
        return found[-1] if found else {"requests": 0, "tokens": 0}


@pytest.fixture
def usage() -> MemoryUsage:
    return MemoryUsage()


@pytest.fixture
def clock() -> list[float]:
    return [MINUTE_START + 30]  # half way through a minute


def budgets_over(usage: MemoryUsage, clock: list[float], **settings: int | str) -> Budgets:
    configured = Settings(quota_table_name="quota", **settings)  # type: ignore[arg-type]
    return Budgets(usage, configured, clock=lambda: clock[0])


def limit(usage: MemoryUsage, caller: str = CALLER, **values: int) -> None:
    usage.limit_items[limits_key(caller)] = values


def test_a_reservation_counts_one_request_and_its_tokens_in_every_window(usage, clock) -> None:
    limit(usage, requests_per_minute=10, tokens_per_day=1_000)
    reservation = budgets_over(usage, clock).reserve(CALLER, 300)
    assert reservation is not None and len(reservation.keys) == 2
    assert usage.used("minute") == {"requests": 1, "tokens": 300}
    assert usage.used("day") == {"requests": 1, "tokens": 300}
    # The headers describe the tightest budget: 70% of the day's tokens left vs 90% of the minute's requests
    assert reservation.headers["RateLimit-Limit"] == "1000" and reservation.headers["RateLimit-Remaining"] == "700"


def test_a_spent_window_refuses_with_its_reset_time_and_undoes_the_other_windows(usage, clock) -> None:
    limit(usage, requests_per_day=100, requests_per_minute=1)
    budgets = budgets_over(usage, clock)
    budgets.reserve(CALLER, 5)
    with pytest.raises(QuotaExceeded) as refused:
        budgets.reserve(CALLER, 5)
    assert refused.value.status == 429 and refused.value.code == "quota_exceeded"
    assert refused.value.headers["Retry-After"] == "30"  # the minute ends in 30 s
    assert refused.value.headers["RateLimit-Remaining"] == "0"
    assert usage.used("day") == {"requests": 1, "tokens": 5}  # the refused request was taken back out


def test_the_refusal_names_the_budget_that_is_spent(usage, clock) -> None:
    limit(usage, requests_per_minute=5, tokens_per_minute=1_000)
    budgets = budgets_over(usage, clock)
    budgets.reserve(CALLER, 900)
    with pytest.raises(QuotaExceeded) as refused:
        budgets.reserve(CALLER, 200)
    assert "tokens per minute" in refused.value.message
    with pytest.raises(QuotaExceeded) as too_big:  # more than the whole budget: refused before the store
        budgets.reserve(CALLER, 5_000)
    assert "tokens per minute" in too_big.value.message and usage.used("minute")["requests"] == 1


def test_settling_refunds_what_was_not_used_and_a_release_keeps_only_the_request(usage, clock) -> None:
    limit(usage, tokens_per_minute=10_000)
    budgets = budgets_over(usage, clock)
    budgets.settle(budgets.reserve(CALLER, 1_000), 120)
    assert usage.used("minute") == {"requests": 1, "tokens": 120}
    budgets.release(budgets.reserve(CALLER, 1_000))
    assert usage.used("minute") == {"requests": 2, "tokens": 120}


def test_a_spending_block_releases_unless_settled(usage, clock) -> None:
    limit(usage, tokens_per_minute=10_000)
    budgets = budgets_over(usage, clock)
    with pytest.raises(RuntimeError), budgets.spending(CALLER, {"model": "m", "input": "x", "max_tokens": 5}):
        raise RuntimeError("the upstream call failed")
    assert usage.used("minute")["tokens"] == 0
    with budgets.spending(CALLER, {"model": "m", "input": "x"}) as spending:
        spending.settle(7)
    assert usage.used("minute")["tokens"] == 7


def test_a_new_minute_is_a_new_minute_budget_but_the_day_keeps_counting(usage, clock) -> None:
    limit(usage, requests_per_minute=1, requests_per_day=5)
    budgets = budgets_over(usage, clock)
    budgets.reserve(CALLER, 0)
    with pytest.raises(QuotaExceeded):
        budgets.reserve(CALLER, 0)
    clock[0] += 30  # the next minute
    reservation = budgets.reserve(CALLER, 0)
    assert reservation is not None and reservation.headers["RateLimit-Remaining"] == "0"  # minute: 1 of 1 used
    day = [item for key, item in usage.counters.items() if "#day#" in key]
    assert day == [{"requests": 2, "tokens": 0}]


def test_limits_are_read_once_per_max_age_and_the_default_applies_to_keys_without_their_own(usage, clock) -> None:
    limit(usage, "default", requests_per_minute=1)
    budgets = budgets_over(usage, clock, quota_limits_max_age_seconds=60)
    budgets.reserve("key-id-carol", 0)
    limit(usage, "key-id-carol", requests_per_minute=100)
    with pytest.raises(QuotaExceeded):  # still the default's limit: read a moment ago
        budgets.reserve("key-id-carol", 0)
    clock[0] += 61
    # Carol's own limit now (the default's would refuse the second request of this minute)
    assert budgets.reserve("key-id-carol", 0) is not None and budgets.reserve("key-id-carol", 0) is not None
    assert usage.limit_reads == 2  # carol's and the default's items in one read; then again once it aged


def test_a_failed_limits_read_is_open_only_until_a_read_a_few_seconds_later(usage, clock) -> None:
    # Given a key with a budget of one request a minute, and a quota table that fails when its limits are read
    limit(usage, requests_per_minute=1)
    budgets = budgets_over(usage, clock, quota_limits_max_age_seconds=60)
    usage.failing = True
    assert budgets.limits_for(CALLER) is None  # open: the gateway keeps serving
    reads = usage.limit_reads
    # And the failure is kept a moment: requests meanwhile do not each wait on the failing table
    clock[0] += 1
    assert budgets.limits_for(CALLER) is None and usage.limit_reads == reads
    # When the table answers again, a few seconds later (long before the limits' max age)
    usage.failing = False
    clock[0] += FAILED_LIMITS_RETRY_SECONDS
    # Then the budget applies again
    budgets.reserve(CALLER, 0)
    with pytest.raises(QuotaExceeded):
        budgets.reserve(CALLER, 0)


def test_a_failing_store_fails_open(usage, clock) -> None:
    limit(usage, requests_per_minute=1)
    budgets = budgets_over(usage, clock)
    budgets.limits_for(CALLER)  # read while the store was up
    usage.failing = True
    for _ in range(3):
        reservation = budgets.reserve(CALLER, 10)
        assert reservation is not None and reservation.keys == []
    assert budgets.peek(CALLER) == {}


def test_concurrent_reservations_never_overspend(usage, clock) -> None:
    limit(usage, requests_per_minute=10, tokens_per_minute=10_000)
    budgets = budgets_over(usage, clock)

    def attempt(_: int) -> bool:
        try:
            budgets.reserve(CALLER, 700)
        except QuotaExceeded:
            return False
        return True

    with ThreadPoolExecutor(max_workers=8) as pool:
        granted = sum(pool.map(attempt, range(40)))
    assert granted == 10 and usage.used("minute") == {"requests": 10, "tokens": 7_000}


def test_peek_reports_without_spending_and_a_caller_without_limits_is_not_budgeted(usage, clock) -> None:
    limit(usage, requests_per_minute=3)
    budgets = budgets_over(usage, clock)
    budgets.reserve(CALLER, 0)
    assert budgets.peek(CALLER)["RateLimit-Remaining"] == "2"
    assert usage.used("minute")["requests"] == 1
    assert budgets.reserve("key-id-nobody", 100) is None and budgets.peek(None) == {}


def test_budgets_are_off_without_a_quota_table(usage, clock) -> None:
    limit(usage, requests_per_minute=0)
    budgets = Budgets(usage, Settings(quota_table_name=""), clock=lambda: clock[0])
    with budgets.spending(CALLER, {"model": "m", "input": "x"}) as spending:
        assert spending.reservation is None and spending.headers == {}
    assert usage.limit_reads == 0


# --- a completion the budget caps (issue 21) ----------------------------------------------------------------------

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def test_a_request_without_max_tokens_is_capped_at_the_default_and_reserves_exactly_that(usage, clock) -> None:
    from mistral_gateway.policies import quota

    limit(usage, tokens_per_minute=100_000)
    budgets = budgets_over(usage, clock, quota_default_completion_tokens=500)
    spending = budgets.spending(CALLER, CHAT, cappable=True)
    assert spending.cap == 500 and spending.headers[quota.CAPPED_HEADER] == "500"
    assert spending.reserved_tokens == token_bound.prompt_tokens(CHAT) + 500  # a true upper bound: Mistral stops at 500


def test_the_cap_shrinks_to_the_room_left_and_refuses_when_there_is_none(usage, clock) -> None:

    prompt = token_bound.prompt_tokens(CHAT)
    limit(usage, tokens_per_minute=prompt * 2 + 700)
    budgets = budgets_over(usage, clock, quota_default_completion_tokens=500)
    first = budgets.spending(CALLER, CHAT, cappable=True)
    second = budgets.spending(CALLER, CHAT, cappable=True)  # 200 left for its completion
    assert (first.cap, second.cap) == (500, 200)
    with pytest.raises(QuotaExceeded):
        budgets.spending(CALLER, CHAT, cappable=True)
    assert usage.used("minute")["tokens"] == prompt * 2 + 700  # exactly the budget, never past it


def test_each_of_n_choices_gets_the_cap(usage, clock) -> None:

    body = {**CHAT, "n": 3}
    limit(usage, tokens_per_minute=100_000)
    budgets = budgets_over(usage, clock, quota_default_completion_tokens=300)
    spending = budgets.spending(CALLER, body, cappable=True)
    assert spending.cap == 300 and usage.used("minute")["tokens"] == token_bound.prompt_tokens(body) + 3 * 300


@pytest.mark.parametrize(
    ("body", "limits", "cappable"),
    [
        ({**CHAT, "max_tokens": 50}, {"tokens_per_minute": 100_000}, True),  # the caller's own bound holds
        (CHAT, {"requests_per_minute": 10}, True),  # no token budget: nothing to protect
        (CHAT, {"tokens_per_minute": 100_000}, False),  # a route that cannot send max_tokens
    ],
    ids=["max_tokens set", "requests only", "not cappable"],
)
def test_no_cap_where_none_is_needed_or_possible(usage, clock, body, limits, cappable) -> None:
    limit(usage, **limits)
    spending = budgets_over(usage, clock).spending(CALLER, body, cappable=cappable)
    assert spending.cap is None and "X-Gateway-Max-Tokens-Capped" not in spending.headers


def test_concurrent_uncapped_requests_never_spend_past_the_limit(usage, clock) -> None:
    limit(usage, tokens_per_minute=12_000)
    budgets = budgets_over(usage, clock, quota_default_completion_tokens=4_096)

    def one(_: int) -> int | None:
        try:
            spending = budgets.spending(CALLER, CHAT, cappable=True)
        except QuotaExceeded:
            return None
        spending.settle(spending.reserved_tokens)  # Mistral wrote up to the cap: the worst case
        return spending.cap

    with ThreadPoolExecutor(max_workers=10) as pool:
        caps = list(pool.map(one, range(10)))
    assert usage.used("minute")["tokens"] <= 12_000
    assert sum(1 for cap in caps if cap) >= 3  # the room was shared out, not lost


def test_a_timed_out_request_keeps_its_reservation(usage, clock) -> None:
    from mistral_gateway.platform.errors import UpstreamTimeout

    limit(usage, tokens_per_minute=100_000)
    budgets = budgets_over(usage, clock, quota_default_completion_tokens=500)
    with pytest.raises(UpstreamTimeout), budgets.spending(CALLER, CHAT, cappable=True) as spending:
        raise UpstreamTimeout("Mistral did not answer in time.")
    assert usage.used("minute")["tokens"] == spending.reserved_tokens  # what Mistral may bill, not zero


def test_an_answer_cut_by_the_cap_is_not_the_uncapped_answer() -> None:
    from mistral_gateway.policies.quota import cut_at_cap

    cut = {"choices": [{"finish_reason": "length"}]}
    whole = {"choices": [{"finish_reason": "stop"}]}
    assert cut_at_cap(cut, 500) and not cut_at_cap(whole, 500)
    assert not cut_at_cap(cut, None)  # the caller's own max_tokens: its answer is the answer to its request
