"""The one retry policy (upstream.call) against scripted attempts: no network, no real waiting."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx2
import pytest
from mistralai.client import errors as sdk_errors

from mistral_gateway.platform.deadline import Deadline
from mistral_gateway.platform.errors import RateLimited, UpstreamError, UpstreamRejected, UpstreamTimeout
from mistral_gateway.policies.circuit import CircuitBreaker, Circuits
from mistral_gateway.upstream import mistral
from mistral_gateway.upstream import retry as upstream

REQUEST = httpx2.Request("POST", "http://mistral.invalid/v1/chat/completions")


@pytest.fixture
def waits() -> Iterator[list[float]]:
    """The backoff pauses the policy asked for (recorded instead of slept)."""
    from mistral_gateway.platform.observability import metrics

    yield []
    metrics.clear_metrics()


@pytest.fixture
def circuit() -> CircuitBreaker:
    return CircuitBreaker(threshold=5, cooldown_seconds=30)


Call = Callable[..., str]


@pytest.fixture
def call(waits: list[float], circuit: CircuitBreaker) -> Call:
    """upstream.call with the template's policy (3 attempts), jitter at its upper bound, no real waiting."""
    policy = upstream.RetryPolicy(max_attempts=3, attempt_timeout_ms=20_000, sleep=waits.append, jitter=max)

    via = upstream.Upstream(upstream.MISTRAL, Circuits(5, 30, 3), policy, lambda **_: "key")

    def run(attempt: Callable[[int], str], deadline_ms: int = 20_000) -> str:
        deadline = Deadline.start(deadline_ms)
        return upstream.call(attempt, deadline, via=via, operation="test", policy=policy, circuit=circuit)

    return run


def status(code: int, **headers: str) -> sdk_errors.SDKError:
    return sdk_errors.SDKError("API error occurred", httpx2.Response(code, headers=headers, request=REQUEST))


def scripted(*outcomes: Any) -> tuple[Callable[[int], str], list[int]]:
    """An attempt that raises (or returns) the next outcome; records the timeout each attempt was given."""
    timeouts: list[int] = []
    remaining = list(outcomes)

    def attempt(timeout_ms: int) -> str:
        timeouts.append(timeout_ms)
        outcome = remaining.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return str(outcome)

    return attempt, timeouts


def test_5xx_and_connection_errors_are_retried_with_growing_backoff(waits: list[float], call: Call) -> None:
    attempt, timeouts = scripted(status(503), httpx2.ConnectError("refused"), "answer")
    assert call(attempt) == "answer"
    assert waits == [0.2, 0.4] and len(timeouts) == 3


def test_retry_after_is_honoured_when_it_fits_the_deadline(waits: list[float], call: Call) -> None:
    attempt, _ = scripted(status(429, **{"retry-after": "2"}), "answer")
    assert call(attempt) == "answer" and waits == [2.0]


def test_a_retry_after_that_does_not_fit_is_a_429_at_once(waits: list[float], call: Call) -> None:
    attempt, timeouts = scripted(status(429, **{"retry-after": "60"}))
    with pytest.raises(RateLimited) as limited:
        call(attempt)
    assert limited.value.headers["Retry-After"] == "60" and waits == [] and len(timeouts) == 1


def test_attempts_stop_at_the_configured_maximum(waits: list[float], call: Call) -> None:
    attempt, timeouts = scripted(*[status(500)] * 5)
    with pytest.raises(UpstreamError):
        call(attempt)
    assert len(timeouts) == 3  # the policy's max_attempts


def test_every_attempt_fits_the_time_left(waits: list[float], call: Call) -> None:
    attempt, timeouts = scripted(httpx2.ReadTimeout("slow"), "answer")
    assert call(attempt, deadline_ms=5_000) == "answer"
    assert all(timeout <= 5_000 for timeout in timeouts)
    with pytest.raises(UpstreamTimeout):
        call(scripted("never asked")[0], deadline_ms=100)  # less than one attempt can use: no attempt at all


def test_the_callers_own_4xx_is_relayed_once_and_never_retried(
    waits: list[float], call: Call, circuit: CircuitBreaker
) -> None:
    attempt, timeouts = scripted(status(400))
    with pytest.raises(UpstreamRejected) as rejected:
        call(attempt)
    assert rejected.value.status == 400 and len(timeouts) == 1 and waits == []
    assert circuit.state == "closed"


def test_the_sdk_builds_each_marshalling_model_once_and_still_sends_the_same_body() -> None:
    from mistralai.client.utils import serializers

    mistral._build_sdk_models_once()
    mistral._build_sdk_models_once()  # idempotent: never wraps twice
    from mistralai.client import models

    messages = [{"role": "user", "content": "same body"}]
    first = serializers.marshal_json(messages, list[models.UserMessage])
    second = serializers.marshal_json(messages, list[models.UserMessage])
    assert first == second and json.loads(first) == [{"role": "user", "content": "same body"}]
    built = serializers.create_model("Marshaller", body=(list[models.UserMessage], ...))
    assert built is serializers.create_model("Marshaller", body=(list[models.UserMessage], ...))
    assert serializers.create_model.memoized_by_gateway is True  # type: ignore[attr-defined]


def test_the_sdk_reads_a_request_class_type_hints_once_and_still_places_its_parameters() -> None:
    from mistralai.client.utils import forms, queryparams, url

    mistral._build_sdk_models_once()
    from mistralai.client import models

    request = models.FilesAPIRoutesListFilesRequest(page=2, page_size=5)
    placed = queryparams.get_query_params(request, None, None)
    assert placed["page"] == ["2"] and placed["page_size"] == ["5"]
    assert queryparams.get_type_hints(type(request)) is queryparams.get_type_hints(type(request))
    assert url.get_type_hints is queryparams.get_type_hints is forms.get_type_hints


def test_the_sdk_gets_no_async_client_and_an_async_call_fails_loudly() -> None:
    import asyncio

    from mistral_gateway.platform.config import Settings

    sdk = mistral.new_sdk(mistral.MISTRAL, Settings(), lambda: "key")
    assert isinstance(sdk.sdk_configuration.async_client, mistral.NoAsyncClient)
    with pytest.raises(RuntimeError, match="no async SDK calls"):
        asyncio.run(sdk.models.list_async())
