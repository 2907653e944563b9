"""The circuit breaker on its own: when it opens, how it fails fast, its half-open trial, what never trips it."""

from __future__ import annotations

import pytest

from mistral_gateway.circuit import CLOSED, HALF_OPEN, OPEN, CircuitBreaker
from mistral_gateway.errors import ServiceUnavailable


@pytest.fixture
def clock() -> list[float]:
    """The breaker's monotonic clock, moved by the test (`breaker(clock, ...)` hands it over)."""
    return [1_000.0]


def new_breaker(clock: list[float], threshold: int) -> CircuitBreaker:
    return CircuitBreaker(threshold=threshold, cooldown_seconds=30, clock=lambda: clock[0])


def test_it_opens_after_threshold_consecutive_faults_and_then_fails_fast(clock: list[float]) -> None:
    breaker = new_breaker(clock, 3)
    for _ in range(2):
        breaker.before_call()
        breaker.record("server_error")
    assert breaker.state == CLOSED
    breaker.before_call()
    breaker.record("timeout")
    assert breaker.state == OPEN
    clock[0] += 10
    with pytest.raises(ServiceUnavailable) as refused:
        breaker.before_call()
    assert refused.value.code == "circuit_open" and refused.value.headers["Retry-After"] == "20"


def test_a_success_in_between_resets_the_count(clock: list[float]) -> None:
    breaker = new_breaker(clock, 2)
    breaker.record("connection")
    breaker.succeeded()
    breaker.record("garbage")
    assert breaker.state == CLOSED


@pytest.mark.parametrize("kind", ["rate_limited", "rejected", "auth", "refused"])
def test_what_says_the_upstream_is_up_never_trips_it(kind: str, clock: list[float]) -> None:
    breaker = new_breaker(clock, 1)
    for _ in range(5):
        breaker.before_call()
        breaker.record(kind)
    assert breaker.state == CLOSED


def test_after_the_cooldown_one_trial_goes_through_and_decides(clock: list[float]) -> None:
    breaker = new_breaker(clock, 1)
    breaker.record("server_error")
    clock[0] += 30
    breaker.before_call()  # the trial
    assert breaker.state == HALF_OPEN
    with pytest.raises(ServiceUnavailable):
        breaker.before_call()  # everyone else still fails fast while the trial runs
    breaker.record("server_error")  # the trial failed: open again, for a whole cooldown
    assert breaker.state == OPEN
    clock[0] += 30
    breaker.before_call()
    breaker.succeeded()
    assert breaker.state == CLOSED
    breaker.before_call()


def test_a_trial_that_ends_without_a_verdict_frees_the_slot(clock: list[float]) -> None:
    breaker = new_breaker(clock, 1)
    breaker.record("timeout")
    clock[0] += 30
    breaker.before_call()
    breaker.settle()  # e.g. Mistral answered 400 to the trial
    breaker.before_call()  # the next call may try
    assert breaker.state == HALF_OPEN
