"""A circuit breaker per container around upstream calls.

After `threshold` consecutive failed attempts (5xx, timeouts, connection errors, garbage) the circuit opens:
for `cooldown` seconds every call fails fast with 503 + Retry-After instead of spending the caller's deadline
on a Mistral that is down. Then it is half-open: one trial call goes through (others still fail fast); its
success closes the circuit, its failure opens it again. Every state change is a metric and a log line.
Rate limiting (429) does not count: it is Mistral working as designed, and has its own Retry-After.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from mistral_gateway import observability
from mistral_gateway.errors import ServiceUnavailable
from mistral_gateway.observability import logger

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
# Failed attempts that say Mistral is down; the others (429, a refused request or key) say it is up.
TRIPPING_KINDS = frozenset({"server_error", "timeout", "connection", "garbage"})
STATE_METRICS = {
    OPEN: observability.CIRCUIT_OPENED,
    HALF_OPEN: observability.CIRCUIT_HALF_OPEN,
    CLOSED: observability.CIRCUIT_CLOSED,
}


@dataclass
class CircuitBreaker:
    threshold: int
    cooldown_seconds: float
    state: str = CLOSED
    failures: int = 0
    opened_at: float = 0.0
    trial_running: bool = False
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)  # seconds, only ever compared
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def before_call(self) -> None:
        """Raise ServiceUnavailable while open (or while a half-open trial is running)."""
        with self._lock:
            if self.state == CLOSED:
                return
            waited = self.clock() - self.opened_at
            if self.state == OPEN and waited >= self.cooldown_seconds:
                self._move(HALF_OPEN)
            if self.state == HALF_OPEN and not self.trial_running:
                self.trial_running = True  # this call is the trial
                return
            retry_after = max(1, int(self.cooldown_seconds - waited + 0.999))
        observability.count_by(observability.UPSTREAM_ERRORS, "kind", "circuit_open")  # fast, not a failed call
        raise ServiceUnavailable(
            "Mistral is failing repeatedly; the gateway is pausing calls to it. Retry later.",
            code="circuit_open",
            headers={"Retry-After": str(retry_after)},
        )

    def record(self, kind: str) -> None:
        """A failed attempt of this kind (UpstreamErrors' `kind`)."""
        if kind in TRIPPING_KINDS:
            self.failed()
        else:
            self.settle()

    def succeeded(self) -> None:
        with self._lock:
            self.failures = 0
            self.trial_running = False
            if self.state != CLOSED:
                self._move(CLOSED)

    def failed(self) -> None:
        with self._lock:
            self.failures += 1
            if self.state == HALF_OPEN or (self.state == CLOSED and self.failures >= self.threshold):
                self.trial_running = False
                self.opened_at = self.clock()
                self._move(OPEN)

    def settle(self) -> None:
        """An attempt ended in neither success nor an upstream fault (e.g. a 4xx): free the trial slot."""
        with self._lock:
            self.trial_running = False

    def _move(self, state: str) -> None:
        previous, self.state = self.state, state
        logger.warning("upstream circuit changed", extra={"circuit_from": previous, "circuit_to": state})
        observability.count(STATE_METRICS[state])
