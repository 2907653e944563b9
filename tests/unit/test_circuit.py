"""The circuit breaker on its own: when it opens, how it fails fast, its half-open trial, what never trips it."""

from __future__ import annotations

import contextlib

import pytest

from mistral_gateway.platform.errors import ServiceUnavailable
from mistral_gateway.policies.circuit import CLOSED, HALF_OPEN, OPEN, CircuitBreaker, Circuits


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
    breaker.record("idle_timeout")
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


@pytest.mark.parametrize("kind", ["rate_limited", "rejected", "auth", "refused", "timeout"])
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
    breaker.record("connection")
    clock[0] += 30
    breaker.before_call()
    breaker.settle()  # e.g. Mistral answered 400 to the trial
    breaker.before_call()  # the next call may try
    assert breaker.state == HALF_OPEN


# --- circuits per upstream and model (issue 21) -----------------------------------------------------------------

LARGE, SMALL, EMBED, CODE = "mistral-large-latest", "mistral-small-latest", "mistral-embed", "codestral-latest"


def new_circuits(clock: list[float], threshold: int = 2, spread: int = 3) -> Circuits:
    return Circuits(threshold, 30, spread, clock=lambda: clock[0])


def fail(circuits: Circuits, model: str | None, kind: str = "server_error", times: int = 1) -> None:
    for _ in range(times):
        guard = circuits.guard(model)
        guard.before_call()
        guard.record(kind)


def test_one_models_faults_open_only_its_own_circuit(clock: list[float]) -> None:
    # Given a model Mistral keeps failing
    circuits = new_circuits(clock)
    fail(circuits, LARGE, times=2)
    # Then that model fails fast, with the cooldown in Retry-After
    with pytest.raises(ServiceUnavailable) as refused:
        circuits.guard(LARGE).before_call()
    assert refused.value.code == "circuit_open"
    # And every other model, and calls without one (the model list), still go through
    for other in (SMALL, EMBED, None):
        circuits.guard(other).before_call()
    assert circuits.upstream.state == CLOSED and circuits.of(SMALL).state == CLOSED


def test_faults_across_several_models_pause_the_whole_upstream(clock: list[float]) -> None:
    # Given three distinct models failing with no success on the upstream in between (an outage)
    circuits = new_circuits(clock, threshold=5, spread=3)
    for model in (LARGE, SMALL, CODE):
        fail(circuits, model)
    # Then the upstream-wide circuit is open: even a model that never failed fails fast
    assert circuits.upstream.state == OPEN
    with pytest.raises(ServiceUnavailable):
        circuits.guard(EMBED).before_call()
    with pytest.raises(ServiceUnavailable):
        circuits.guard(None).before_call()
    # And after the cooldown one trial decides for all
    clock[0] += 30
    trial = circuits.guard(EMBED)
    trial.before_call()
    trial.succeeded()
    assert circuits.upstream.state == CLOSED
    circuits.guard(SMALL).before_call()


def test_a_success_on_any_model_resets_the_spread(clock: list[float]) -> None:
    circuits = new_circuits(clock, threshold=5, spread=3)
    fail(circuits, LARGE)
    fail(circuits, SMALL)
    ok = circuits.guard(EMBED)
    ok.before_call()
    ok.succeeded()  # Mistral answers: not an outage
    fail(circuits, CODE)
    assert circuits.upstream.state == CLOSED


def test_one_model_failing_for_ever_never_opens_the_upstream(clock: list[float]) -> None:
    circuits = new_circuits(clock, threshold=2, spread=2)
    for _ in range(10):
        clock[0] += 31  # each cooldown over: a trial, which fails again
        fail(circuits, LARGE)
    assert circuits.of(LARGE).state == OPEN and circuits.upstream.state == CLOSED


def test_connection_failures_count_on_the_upstream_whatever_the_model(clock: list[float]) -> None:
    circuits = new_circuits(clock, threshold=2)
    fail(circuits, LARGE, kind="connection")
    fail(circuits, SMALL, kind="connection")
    assert circuits.upstream.state == OPEN
    assert circuits.of(LARGE).state == CLOSED  # not the model's fault
    with pytest.raises(ServiceUnavailable):
        circuits.guard(EMBED).before_call()


def test_faults_without_a_model_count_on_the_upstream(clock: list[float]) -> None:
    circuits = new_circuits(clock, threshold=2)
    fail(circuits, None, times=2)
    assert circuits.upstream.state == OPEN


@pytest.mark.parametrize("kind", ["timeout", "rate_limited", "rejected", "auth"])
def test_a_long_request_or_a_refusal_never_trips_anything(clock: list[float], kind: str) -> None:
    circuits = new_circuits(clock, threshold=1, spread=1)
    fail(circuits, LARGE, kind=kind, times=5)
    fail(circuits, None, kind=kind, times=5)
    assert circuits.upstream.state == CLOSED and circuits.of(LARGE).state == CLOSED


def test_a_model_refused_during_an_upstream_trial_frees_the_trial(clock: list[float]) -> None:
    circuits = new_circuits(clock, threshold=1, spread=5)
    fail(circuits, None)  # the upstream opens
    clock[0] += 15
    circuits.of(LARGE).trip()  # and, later, one model's circuit
    clock[0] += 15
    with pytest.raises(ServiceUnavailable):
        circuits.guard(LARGE).before_call()  # the upstream would try, the model's circuit refuses
    circuits.guard(SMALL).before_call()  # so the upstream's trial slot is still free for another model
    assert circuits.upstream.state == HALF_OPEN


def test_a_caller_naming_endless_models_cannot_grow_the_circuits_without_bound(clock: list[float]) -> None:
    from mistral_gateway.policies.circuit import MAX_MODEL_CIRCUITS

    circuits = new_circuits(clock, threshold=5, spread=10_000)
    for n in range(MAX_MODEL_CIRCUITS * 3):
        with contextlib.suppress(ServiceUnavailable):  # the shared overflow circuit opens too, in the end
            fail(circuits, f"model-{n}", kind="server_error")
    assert len(circuits._models) <= MAX_MODEL_CIRCUITS + 1  # and the overflow circuit they then share
