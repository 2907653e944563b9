"""Calls to Mistral through the official SDK, with the gateway's one retry policy.

The SDK client is built once per container and imported on first need (a cache hit never loads it). The
SDK's own retries are off: they honour Retry-After without a cap, and a Lambda has a deadline. Instead every
attempt gets a timeout that fits the time left, 429/5xx and connection errors are retried with jittered
exponential backoff while the deadline allows, and a 401 triggers exactly one re-read of the secret (key
rotation) and one more attempt. What cannot succeed in time becomes a GatewayError with a documented status.
"""

from __future__ import annotations

import contextlib
import json
import random
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from mistral_gateway.container import current
from mistral_gateway.platform import observability
from mistral_gateway.platform.config import Settings
from mistral_gateway.platform.deadline import Deadline
from mistral_gateway.platform.errors import (
    GatewayError,
    RateLimited,
    UpstreamError,
    UpstreamRejected,
    UpstreamTimeout,
)
from mistral_gateway.platform.observability import logger
from mistral_gateway.policies.circuit import CircuitBreaker, Guard
from mistral_gateway.upstream import refusals, secret

T = TypeVar("T")

# The upstreams: Mistral, and optionally a Mistral-compatible server of your own (fallback targets
# "self-hosted:<model>"). Each has its own SDK client, key and circuit breaker.
MISTRAL = "mistral"
SELF_HOSTED = "self-hosted"

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
BASE_BACKOFF_MS = 200
MAX_BACKOFF_MS = 4_000
# No attempt is started with less than this left: it could not finish anyway.
MIN_ATTEMPT_MS = 250


@dataclass(frozen=True)
class UpstreamAnswer:
    body: bytes  # Mistral's JSON exactly as received
    data: dict[str, Any]

    @property
    def usage(self) -> dict[str, int]:
        from mistral_gateway.platform.economics import token_usage

        return token_usage(self.data.get("usage")) or {"prompt_tokens": 0, "completion_tokens": 0}


class _LastResponse(threading.local):
    """The raw httpx response of this thread's latest SDK call, so answers pass through byte for byte."""

    response: Any = None


_last = _LastResponse()


def _remember(response: Any) -> None:
    _last.response = response


def _sdk(upstream: str = MISTRAL) -> Any:
    return current().sdk(upstream)


def new_sdk(upstream: str, settings: Settings) -> Any:
    """An SDK client for one upstream (the container keeps it): its key is read on every request (from the
    Parameters cache), every raw response is remembered for the pass-through of Mistral's bytes."""
    import httpx2
    from mistralai.client import Mistral

    _build_sdk_models_once()
    http = httpx2.Client(event_hooks={"response": [_remember]}, follow_redirects=False)
    return Mistral(
        api_key=_key_reader(upstream),
        server_url=settings.server_url if upstream == MISTRAL else settings.self_hosted_url,
        client=http,
    )


def _build_sdk_models_once() -> None:
    """mistralai 3.x builds a new pydantic model class (`create_model`) every time it marshals a request body
    or unmarshals an argument: ~1.5 ms each, several per call, ~8 ms of every upstream call measured by the
    streaming benchmark. The class depends only on the type it wraps, so each is built once per container.
    (docs/decisions.md; the SDK is pinned, and every SDK test exercises this.)"""
    from mistralai.client.utils import serializers

    build = serializers.create_model
    if getattr(build, "memoized_by_gateway", False):
        return
    built: dict[tuple[str, Any], Any] = {}

    def create_model(name: str, /, **fields: Any) -> Any:
        wrapped = fields.get("body")
        key = (name, wrapped[0] if isinstance(wrapped, tuple) else None)
        try:
            model = built.get(key)
        except TypeError:  # a type that cannot be hashed: build it every time, as the SDK does
            return build(name, **fields)
        if model is None:
            model = built[key] = build(name, **fields)
        return model

    create_model.memoized_by_gateway = True  # type: ignore[attr-defined]
    serializers.create_model = create_model


def _key_reader(upstream: str) -> Callable[..., str]:
    return secret.mistral_api_key if upstream == MISTRAL else secret.self_hosted_api_key


def breaker(upstream: str = MISTRAL, model: str | None = None) -> CircuitBreaker:
    """The circuit of `model` on `upstream`, or (no model) the upstream-wide one (circuit.Circuits)."""
    return current().breaker(upstream, model)


def guard(upstream: str = MISTRAL, model: str | None = None) -> Guard:
    """What one call consults and tells: the upstream-wide circuit, then the model's."""
    return current().circuits(upstream).guard(model)


def _model_of(arguments: dict[str, Any]) -> str | None:
    model = arguments.get("model")
    return model if isinstance(model, str) and model else None


@dataclass(frozen=True)
class RetryPolicy:
    """How many attempts a call gets, how long each may take, and how long to wait between them: jittered
    exponential backoff, or Retry-After when Mistral sends one. `sleep` and `jitter` are the world's."""

    max_attempts: int
    attempt_timeout_ms: int
    sleep: Callable[[float], None] = time.sleep
    jitter: Callable[[float, float], float] = random.uniform

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(settings.upstream_max_attempts, settings.upstream_timeout_ms)

    def backoff_ms(self, attempts: int, retry_after_ms: float | None) -> float:
        exponential = min(MAX_BACKOFF_MS, BASE_BACKOFF_MS * 2 ** (attempts - 1))
        return max(self.jitter(exponential / 2, exponential), retry_after_ms or 0.0)


class StatusFailure(Exception):
    """A non-2xx answer to a call made without the SDK (the pass-through): what call() reads of the SDK's
    MistralError (status_code, headers, body), so both kinds of call share one retry policy."""

    def __init__(self, status_code: int, headers: Any, body: bytes) -> None:
        super().__init__(f"Mistral answered {status_code}")
        self.status_code = status_code
        self.headers = headers
        self.body = body


def _error_types() -> tuple[tuple[type[Exception], ...], ...]:
    """(unreadable answer, refused or failed status, no answer at all) exception types. The SDK's own are added
    only when the SDK is already loaded: the pass-through never imports it (~200 ms of cold start)."""
    import httpx2

    unreadable: tuple[type[Exception], ...] = (ValueError, UpstreamError)
    statuses: tuple[type[Exception], ...] = (StatusFailure,)
    unanswered: tuple[type[Exception], ...] = (httpx2.TransportError, httpx2.StreamError)
    if "mistralai.client" in sys.modules:
        from mistralai.client import errors as sdk_errors

        unreadable += (sdk_errors.ResponseValidationError,)
        statuses += (sdk_errors.MistralError,)
        unanswered += (sdk_errors.NoResponseError,)
    return unreadable, statuses, unanswered


def chat(arguments: dict[str, Any], deadline: Deadline, upstream: str = MISTRAL) -> UpstreamAnswer:
    return _passthrough("chat", lambda client: client.chat.complete, arguments, deadline, upstream)


def fim(arguments: dict[str, Any], deadline: Deadline, upstream: str = MISTRAL) -> UpstreamAnswer:
    return _passthrough("fim", lambda client: client.fim.complete, arguments, deadline, upstream)


def embeddings(arguments: dict[str, Any], deadline: Deadline) -> UpstreamAnswer:
    return _passthrough("embeddings", lambda client: client.embeddings.create, arguments, deadline)


def models(deadline: Deadline) -> UpstreamAnswer:
    return _passthrough("models", lambda client: client.models.list, {}, deadline, generates=False)


@dataclass(frozen=True)
class UpstreamStream:
    """Mistral's answer to a streamed request, opened (status 200 seen) but not yet read."""

    response: Any  # the httpx2 response behind the SDK's EventStream

    def chunks(self) -> Iterator[bytes]:
        """The body as it arrives. A silence longer than the idle timeout raises httpx2.ReadTimeout."""
        return self.response.iter_bytes()  # type: ignore[no-any-return]

    def close(self) -> None:
        """Stop reading (the caller hung up, or the stream ran too long), from any thread: the connection is
        shut down, which wakes a read blocked in the reader thread (closing alone would not) and tells
        Mistral to stop writing."""
        network = self.response.extensions.get("network_stream")
        connection = network.get_extra_info("socket") if network is not None else None
        if connection is not None:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(Exception):
            self.response.close()


def open_stream(
    operation: str, arguments: dict[str, Any], deadline: Deadline, idle_timeout_ms: int, upstream: str = MISTRAL
) -> UpstreamStream:
    """Open a streamed chat or FIM answer under the retry policy: everything before Mistral's 200 is retried
    and mapped like a plain call; once this returns, the caller forwards the body and failures are in-band.
    The SDK builds, authenticates and checks the request; its parsed events are not used, so Mistral's bytes
    pass through untouched."""
    client = _sdk(upstream)
    method = client.chat.stream if operation == "chat" else client.fim.stream

    def attempt(timeout_ms: int) -> UpstreamStream:
        # httpx's read timeout applies to every read of the body: it is the stream's idle timeout.
        events = method(**arguments, timeout_ms=min(timeout_ms, idle_timeout_ms))
        return UpstreamStream(events.response)

    return call(
        attempt,
        deadline,
        operation=f"{operation}.stream",
        upstream=upstream,
        model=_model_of(arguments),
        generates=True,
    )


def stream_failed(kind: str, upstream: str = MISTRAL, model: str | None = None) -> None:
    """A stream that broke after Mistral's 200 (cut, idle too long): counted like a failed attempt of its model."""
    _attempt_failed(kind, guard(upstream, model))


# The SDK's own request models: what it refuses client-side, before sending.
_SDK_REQUESTS = {"chat": "ChatCompletionRequest", "fim": "FIMCompletionRequest", "embeddings": "EmbeddingRequest"}


def preflight(operation: str, arguments: dict[str, Any]) -> None:
    """Raise the caller's 422 for a request the SDK would refuse, before the gateway stores or spends anything
    (a budget reservation; the single-flight lease the lookup took is given back). `call` still tells refusals
    from garbage as a backstop."""
    from mistralai.client import models as sdk_models
    from pydantic import ValidationError

    try:
        getattr(sdk_models, _SDK_REQUESTS[operation]).model_validate(arguments)
    except ValidationError as error:
        raise refusals.classify(error, None).error from None


def _passthrough(
    operation: str,
    method_of: Callable[[Any], Callable[..., Any]],
    arguments: dict[str, Any],
    deadline: Deadline,
    upstream: str = MISTRAL,
    *,
    generates: bool = True,
) -> UpstreamAnswer:
    """One SDK method under the retry policy, answering with Mistral's raw bytes (the SDK still parses them)."""
    # Built (and imported) before the clock starts: UpstreamLatency is the upstream's time only.
    method = method_of(_sdk(upstream))

    def attempt(timeout_ms: int) -> UpstreamAnswer:
        method(**arguments, timeout_ms=timeout_ms)
        return _raw_answer()

    return call(
        attempt, deadline, operation=operation, upstream=upstream, model=_model_of(arguments), generates=generates
    )


def _raw_answer() -> UpstreamAnswer:
    response = _last.response
    body = response.content
    data = json.loads(body)
    if not isinstance(data, dict):
        raise UpstreamError("Mistral returned an unexpected answer.")
    return UpstreamAnswer(body=body, data=data)


def call(
    attempt: Callable[[int], T],
    deadline: Deadline,
    *,
    operation: str,
    upstream: str = MISTRAL,
    model: str | None = None,
    generates: bool = False,
    policy: RetryPolicy | None = None,
    circuit: CircuitBreaker | Guard | None = None,
) -> T:
    """Run `attempt(timeout_ms)` under the retry policy (the container's unless given) and the circuits of the
    upstream and `model` (None: the upstream-wide one only); raise a GatewayError when it cannot succeed.

    A call that `generates` (Mistral writes, and bills, an answer) is not retried after a read timeout: Mistral
    may still be writing the first answer, and a second would be billed too. Such a timeout is the request
    being long, not Mistral failing: it does not count towards any circuit (circuit.TRIPPING_KINDS)."""
    import httpx2

    unreadable_errors, status_errors, unanswered_errors = _error_types()
    policy = policy or RetryPolicy.from_settings(current().settings)
    circuit = circuit or guard(upstream, model)
    attempts = 0
    refreshed_key = False
    while True:
        remaining = deadline.remaining_ms()
        if remaining < MIN_ATTEMPT_MS:
            _error_metric("deadline")
            raise UpstreamTimeout("Mistral did not answer within the gateway's deadline.")
        circuit.before_call()  # fails fast (503) while Mistral is known to be down
        attempts += 1
        timeout_ms = int(min(deadline.attempt_ceiling_ms or policy.attempt_timeout_ms, remaining))
        started = time.perf_counter()
        retry_after_ms: float | None = None
        try:
            observability.count(observability.UPSTREAM_CALLS)
            _last.response = None  # set by the response hook only if Mistral answers this attempt
            with observability.traced(f"mistral.{operation}"):
                result = attempt(timeout_ms)
            observability.milliseconds(observability.UPSTREAM_LATENCY, (time.perf_counter() - started) * 1000)
            circuit.succeeded()
            return result
        except unreadable_errors as error:
            # An UpstreamError raised by the attempt itself (the pass-through's unreadable answer) is Mistral's.
            # A ValueError is either the SDK refusing the request before sending it (the caller's fault: 422,
            # Mistral never asked) or an answer that is not JSON / not the expected shape (refusals.py).
            unreadable = (
                refusals.Unreadable("garbage", error)
                if isinstance(error, UpstreamError)
                else refusals.classify(error, _last.response)
            )
            if unreadable.kind is None:
                circuit.settle()
            else:
                _attempt_failed(unreadable.kind, circuit)
            raise unreadable.error from None
        except status_errors as error:
            status = error.status_code  # type: ignore[attr-defined]
            if status == 401 and not refreshed_key:
                # The key may have been rotated: re-read it once, try once more.
                circuit.settle()  # Mistral answered: it is up
                refreshed_key = True
                attempts -= 1
                logger.warning("Mistral rejected the API key; re-reading the secret once")
                _key_reader(upstream)(refresh=True)
                continue
            if status not in RETRYABLE_STATUSES:
                raise _rejected(error, status, circuit) from None
            if status == 429:
                retry_after_ms = _retry_after_ms(error.headers)  # type: ignore[attr-defined]
            failure: GatewayError = _final_error(error, status, retry_after_ms)
            kind = "rate_limited" if status == 429 else "server_error"
        except (httpx2.ConnectTimeout, httpx2.PoolTimeout):
            kind = "connection"  # no connection in time: the upstream cannot be reached
            failure = UpstreamTimeout("Mistral did not answer in time.")
        except httpx2.TimeoutException:
            kind = "timeout"
            failure = UpstreamTimeout("Mistral did not answer in time.")
            if generates:
                _attempt_failed(kind, circuit)
                raise failure from None
        except unanswered_errors:
            kind = "connection"
            failure = UpstreamError("The gateway could not reach Mistral.")
        except BaseException:
            circuit.settle()  # never leave a half-open trial slot taken
            raise

        _attempt_failed(kind, circuit)
        wait_ms = policy.backoff_ms(attempts, retry_after_ms)
        if attempts >= policy.max_attempts or wait_ms + MIN_ATTEMPT_MS > deadline.remaining_ms():
            raise failure
        observability.count(observability.UPSTREAM_RETRIES)
        logger.info("retrying Mistral", extra={"attempt": attempts, "reason": kind, "wait_ms": round(wait_ms)})
        policy.sleep(wait_ms / 1000)


def _retry_after_ms(headers: Any) -> float | None:
    try:
        if headers.get("retry-after-ms"):
            return float(headers["retry-after-ms"])
        if headers.get("retry-after"):
            return float(headers["retry-after"]) * 1000
    except (TypeError, ValueError):
        return None
    return None


def _final_error(error: Any, status: int, retry_after_ms: float | None) -> GatewayError:
    if status == 429:
        seconds = int((retry_after_ms or 1000) / 1000 + 0.999)
        return RateLimited("Mistral is rate-limiting this gateway; retry later.", retry_after_seconds=seconds)
    return UpstreamError(f"Mistral failed with status {status}.")


def _rejected(error: Any, status: int, circuit: CircuitBreaker | Guard) -> GatewayError:
    """Mistral refused the request itself: relay its status and body (never cached). Only a 4xx is a refusal: any
    other status left here (a 2xx the SDK could not read, e.g. an HTML page; a 3xx; a 501) is Mistral failing."""
    if not 400 <= status < 500:
        _attempt_failed("garbage", circuit)
        return UpstreamError(f"Mistral answered with status {status} and a body the gateway could not read.")
    _attempt_failed("auth" if status in (401, 403) else "rejected", circuit)
    if status in (401, 403):
        logger.error("Mistral rejects the gateway's API key; update the secret", extra={"status": status})
        return UpstreamError("The gateway's Mistral credentials were rejected.")
    try:
        body = json.loads(error.body) if error.body else None
    except ValueError:
        body = None
    return UpstreamRejected(status, body, "Mistral rejected the request.")


def _attempt_failed(kind: str, circuit: CircuitBreaker | Guard) -> None:
    """Count a failed attempt and tell the upstream's circuit breaker (which decides which kinds mean the
    upstream is down)."""
    _error_metric(kind)
    circuit.record(kind)


def _error_metric(kind: str) -> None:
    observability.count_by(observability.UPSTREAM_ERRORS, "kind", kind)
    observability.count(observability.UPSTREAM_FAILURES)  # the same, without `kind`: what the alarm divides
