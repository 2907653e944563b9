"""The gateway's one retry policy around every call to an upstream (Mistral, or a self-hosted server).

Every attempt gets a timeout that fits the time left, 429/5xx and connection errors are retried with jittered
exponential backoff while the deadline allows, and a 401 triggers exactly one re-read of the secret (key
rotation) and one more attempt. What cannot succeed in time becomes a GatewayError with a documented status.
Each upstream is an `Upstream` (its name, circuits, policy and key), built once per container by the container.
"""

from __future__ import annotations

import json
import random
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

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
from mistral_gateway.policies.circuit import CircuitBreaker, Circuits, Guard
from mistral_gateway.upstream import refusals

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


class _LastResponse(threading.local):
    """The raw httpx response of this thread's latest SDK call, so answers pass through byte for byte."""

    response: Any = None


_last = _LastResponse()


def remember(response: Any) -> None:
    """The SDK client's response hook (mistral.py): this thread's latest raw response."""
    _last.response = response


def last_response() -> Any:
    return _last.response


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


def model_of(arguments: dict[str, Any]) -> str | None:
    model = arguments.get("model")
    return model if isinstance(model, str) and model else None


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


@dataclass(frozen=True)
class Upstream:
    """One upstream as a call needs it: its circuits (upstream-wide and per model), the retry policy, and the
    reader of its key (`refresh=True` re-reads it once after a 401). The container builds one per upstream."""

    name: str
    circuits: Circuits
    policy: RetryPolicy
    read_key: Callable[..., str]

    def guard(self, model: str | None = None) -> Guard:
        """What one call consults and tells: the upstream-wide circuit, then the model's."""
        return self.circuits.guard(model)


def call(
    attempt: Callable[[int], T],
    deadline: Deadline,
    *,
    via: Upstream,
    operation: str,
    model: str | None = None,
    generates: bool = False,
    policy: RetryPolicy | None = None,
    circuit: CircuitBreaker | Guard | None = None,
) -> T:
    """Run `attempt(timeout_ms)` under the retry policy (the upstream's unless given) and the circuits of the
    upstream and `model` (None: the upstream-wide one only); raise a GatewayError when it cannot succeed.

    A call that `generates` (Mistral writes, and bills, an answer) is not retried after a read timeout: Mistral
    may still be writing the first answer, and a second would be billed too. Such a timeout is the request
    being long, not Mistral failing: it does not count towards any circuit (circuit.TRIPPING_KINDS)."""
    import httpx2

    unreadable_errors, status_errors, unanswered_errors = _error_types()
    policy = policy or via.policy
    circuit = circuit or via.guard(model)
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
                attempt_failed(unreadable.kind, circuit)
            raise unreadable.error from None
        except status_errors as error:
            status = error.status_code  # type: ignore[attr-defined]
            if status == 401 and not refreshed_key:
                # The key may have been rotated: re-read it once, try once more.
                circuit.settle()  # Mistral answered: it is up
                refreshed_key = True
                attempts -= 1
                logger.warning("Mistral rejected the API key; re-reading the secret once")
                via.read_key(refresh=True)
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
                attempt_failed(kind, circuit)
                raise failure from None
        except unanswered_errors:
            kind = "connection"
            failure = UpstreamError("The gateway could not reach Mistral.")
        except BaseException:
            circuit.settle()  # never leave a half-open trial slot taken
            raise

        attempt_failed(kind, circuit)
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
        attempt_failed("garbage", circuit)
        return UpstreamError(f"Mistral answered with status {status} and a body the gateway could not read.")
    attempt_failed("auth" if status in (401, 403) else "rejected", circuit)
    if status in (401, 403):
        logger.error("Mistral rejects the gateway's API key; update the secret", extra={"status": status})
        return UpstreamError("The gateway's Mistral credentials were rejected.")
    try:
        body = json.loads(error.body) if error.body else None
    except ValueError:
        body = None
    return UpstreamRejected(status, body, "Mistral rejected the request.")


def attempt_failed(kind: str, circuit: CircuitBreaker | Guard) -> None:
    """Count a failed attempt and tell the upstream's circuit breaker (which decides which kinds mean the
    upstream is down)."""
    _error_metric(kind)
    circuit.record(kind)


def _error_metric(kind: str) -> None:
    observability.count_by(observability.UPSTREAM_ERRORS, "kind", kind)
    observability.count(observability.UPSTREAM_FAILURES)  # the same, without `kind`: what the alarm divides
