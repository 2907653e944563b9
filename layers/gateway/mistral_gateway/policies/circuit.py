"""A circuit breaker per container around upstream calls.

After `threshold` consecutive failed attempts (5xx, silent streams, connection errors, garbage) the circuit opens:
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

from mistral_gateway.platform import observability
from mistral_gateway.platform.errors import ServiceUnavailable
from mistral_gateway.platform.observability import logger

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
# Failed attempts that say Mistral is down; the others (429, a refused request or key) say it is up. A read
# timeout ("timeout") is not one: Mistral writes a non-streamed answer whole, so a valid request that is merely
# long times out while Mistral is healthy (issue 21). A stream silent for StreamIdleTimeoutMs ("idle_timeout")
# and a connection that cannot be made, even in time ("connection"), are.
TRIPPING_KINDS = frozenset({"server_error", "idle_timeout", "connection", "garbage"})
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
    name: str = "upstream"  # what it guards, in its log lines: the upstream, or one model on it
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

    def trip(self) -> None:
        """Open now (the upstream is failing as a whole: see Circuits)."""
        with self._lock:
            if self.state != OPEN:
                self.trial_running = False
                self.opened_at = self.clock()
                self._move(OPEN)

    def settle(self) -> None:
        """An attempt ended in neither success nor an upstream fault (e.g. a 4xx): free the trial slot."""
        with self._lock:
            self.trial_running = False

    def _move(self, state: str) -> None:
        previous, self.state = self.state, state
        logger.warning(
            "upstream circuit changed",
            extra={"circuit": observability.bounded(self.name), "circuit_from": previous, "circuit_to": state},
        )
        observability.count(STATE_METRICS[state])


# --- circuits per upstream and model (issue 21) -------------------------------------------------------------------

# Kinds that say the upstream as a whole cannot be reached (no answer at all): they count on its own circuit.
UPSTREAM_KINDS = frozenset({"connection"})
# How many models' circuits one upstream keeps (a caller can name any model): past it, closed circuits without
# failures are forgotten first, then every further model shares one overflow circuit.
MAX_MODEL_CIRCUITS = 256
OVERFLOW = "*"


class Circuits:
    """One upstream's circuits: one upstream-wide, and one per model (or per other target, e.g. an agent).

    - A fault that is about one model (5xx, garbage, a stream gone silent) counts on that model's circuit
      only: one overloaded or deprecated model leaves the others, embeddings and the model list alone.
    - A fault that is about the upstream (no connection, no answer) counts on the upstream-wide circuit,
      which every call consults first.
    - Faults from `spread` distinct models with no success anywhere on the upstream in between mean the whole
      upstream is failing: its circuit opens at once, and every model fails fast.
    - A call without a model (the model list, a pass-through without one) uses the upstream-wide circuit only.
    """

    def __init__(self, threshold: int, cooldown_seconds: float, spread: int, clock: Callable[[], float] | None = None):
        self.threshold = threshold
        self.cooldown_seconds = cooldown_seconds
        self.spread = spread
        self._clock = clock or time.monotonic
        self.upstream = self._new()
        self._models: dict[str, CircuitBreaker] = {}
        self._failing: set[str] = set()  # models with a fault since the last success on this upstream
        self._lock = threading.Lock()

    def _new(self, name: str = "upstream") -> CircuitBreaker:
        return CircuitBreaker(self.threshold, self.cooldown_seconds, clock=self._clock, name=name)

    def of(self, model: str | None) -> CircuitBreaker:
        """The circuit of `model` (None: the upstream-wide one)."""
        if model is None:
            return self.upstream
        with self._lock:
            breaker = self._models.get(model)
            if breaker is None:
                if len(self._models) >= MAX_MODEL_CIRCUITS:
                    idle = [name for name, b in self._models.items() if b.state == CLOSED and not b.failures]
                    for name in idle:
                        if name != OVERFLOW:
                            del self._models[name]
                if len(self._models) >= MAX_MODEL_CIRCUITS:
                    model = OVERFLOW
                breaker = self._models.setdefault(model, self._new(f"model:{model}"))
            return breaker

    def guard(self, model: str | None) -> Guard:
        """What one call tells (retry.call): the upstream-wide circuit and the model's, as one."""
        return Guard(self, model)

    def _model_fault(self, model: str) -> None:
        with self._lock:
            self._failing.add(model)
            spread = len(self._failing)
        if spread >= self.spread:
            logger.warning("faults from several models: pausing the whole upstream", extra={"models_failing": spread})
            self.upstream.trip()

    def _success(self) -> None:
        with self._lock:
            self._failing.clear()


@dataclass
class Guard:
    """One call's view of an upstream's circuits: the same methods as a CircuitBreaker."""

    circuits: Circuits
    model: str | None

    def _model(self) -> CircuitBreaker | None:
        return None if self.model is None else self.circuits.of(self.model)

    def before_call(self) -> None:
        self.circuits.upstream.before_call()
        breaker = self._model()
        if breaker is None:
            return
        try:
            breaker.before_call()
        except ServiceUnavailable:
            self.circuits.upstream.settle()  # an upstream trial slot this call took is free again
            raise

    def record(self, kind: str) -> None:
        breaker = self._model()
        if breaker is None or kind in UPSTREAM_KINDS:
            self.circuits.upstream.record(kind)
            if breaker is not None and breaker.state == HALF_OPEN:
                breaker.failed()  # the model's trial did not succeed: it stays paused
            elif breaker is not None:
                breaker.settle()
            return
        self.circuits.upstream.settle()
        breaker.record(kind)
        if kind in TRIPPING_KINDS:
            self.circuits._model_fault(str(self.model))

    def succeeded(self) -> None:
        self.circuits._success()
        self.circuits.upstream.succeeded()
        breaker = self._model()
        if breaker is not None:
            breaker.succeeded()

    def settle(self) -> None:
        self.circuits.upstream.settle()
        breaker = self._model()
        if breaker is not None:
            breaker.settle()

    @property
    def state(self) -> str:
        breaker = self._model()
        return breaker.state if breaker is not None else self.circuits.upstream.state
