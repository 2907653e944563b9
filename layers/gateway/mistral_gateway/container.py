"""What one Lambda container builds once and keeps between requests, in one object.

Settings, the wall clock the budgets count their windows by, the AWS clients, the answer cache, the
callers' budgets, the upstreams' keys, SDK clients and circuit breakers, the price table. Each piece is
built on first use (a cache hit never builds an SDK client), once, even when a batch's threads ask at the
same moment.

The composition root: it sits above the pieces it assembles (policies/, upstream/, stores/, platform/) and
hands each what it needs as arguments; none of them imports it. A handler module calls `start()` when it is
imported (a cold start); the handlers, edge/ and the use cases in flow/ reach the object through `current()`
(docs/decisions.md says why). A test starts a new one to get a new container: fresh settings from the
environment, no clients, no cached key, closed circuits, and, if it wants, a clock of its own.
"""

from __future__ import annotations

import contextlib
import contextvars
import gc
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from mistral_gateway.platform.config import Settings

if TYPE_CHECKING:
    import botocore.session

    from mistral_gateway.platform.economics import Prices
    from mistral_gateway.policies.cache import ResponseCache
    from mistral_gateway.policies.circuit import CircuitBreaker, Circuits
    from mistral_gateway.policies.quota import Budgets
    from mistral_gateway.stores.ledger import Ledger
    from mistral_gateway.stores.responses import ResponsesStore
    from mistral_gateway.upstream.retry import Upstream
    from mistral_gateway.upstream.secret import Keys

T = TypeVar("T")


def wall_clock() -> float:
    return time.time()  # looked up on each call, so a test may still patch time.time


class Container:
    def __init__(self, settings: Settings | None = None, *, clock: Callable[[], float] = wall_clock) -> None:
        self.settings = settings if settings is not None else Settings.from_env()
        self.clock = clock
        self._lock = threading.RLock()
        self._built: dict[tuple[str, str], Any] = {}

    def _once(self, group: str, name: str, build: Callable[[], T]) -> T:
        key = (group, name)
        built = self._built.get(key)
        if built is None:
            with self._lock, _collector_paused():
                built = self._built.get(key)
                if built is None:
                    built = self._built[key] = build()
        return built  # type: ignore[no-any-return]

    def aws_client(self, service: str) -> Any:
        """An AWS client with short timeouts, so a sick AWS service adds little latency. The endpoint comes
        from the SDK's own settings (AWS_ENDPOINT_URL): how `make serve` and the tests reach moto."""
        return self._once("aws", service, lambda: self._new_aws_client(service))

    def _new_aws_client(self, service: str) -> Any:
        from botocore.config import Config

        # The cache fails open, so a slow DynamoDB should cost little; the secret is needed, so it gets more.
        timeout_ms = self.settings.cache_timeout_ms if service == "dynamodb" else self.settings.aws_timeout_ms
        config = Config(
            connect_timeout=timeout_ms / 1000,
            read_timeout=timeout_ms / 1000,
            retries={"max_attempts": 2, "mode": "standard"},
        )
        # One session for the container's clients: a session of its own per client loaded the SDK's shared data
        # (endpoints, partitions, defaults) and resolved credentials again. A cold miss's second client (Secrets
        # Manager's) took 65-75 ms that way, 6-8 ms from the shared session (cold children timed against moto).
        # Builds run under _once's lock: a session is not thread-safe.
        session = self._once("aws session", "botocore", _aws_session)
        return session.create_client(service, config=config)

    @property
    def answers(self) -> ResponseCache:
        """The answer cache (DynamoDB), with the container's recent answers in front of it (recent.py)."""
        return self._once("store", "answers", self._new_answers)

    def _new_answers(self) -> ResponseCache:
        from mistral_gateway.policies.cache import CachedAnswer, ResponseCache
        from mistral_gateway.policies.recent import RecentAnswers

        dynamodb = self.aws_client("dynamodb")
        recent = RecentAnswers[CachedAnswer](self.settings.answer_memory_bytes, self.settings.answer_memory_seconds)
        return ResponseCache(self.settings.table_name, dynamodb, self.settings.stale_if_error_seconds, recent)

    @property
    def budgets(self) -> Budgets:
        """The callers' budgets (quota.py), counted in the quota table."""
        return self._once("store", "budgets", self._new_budgets)

    def _new_budgets(self) -> Budgets:
        from mistral_gateway.policies.quota import Budgets
        from mistral_gateway.policies.usage_store import DynamoUsage

        usage = DynamoUsage(lambda: self.aws_client("dynamodb"), self.settings.quota_table_name)
        return Budgets(usage, self.settings, clock=self.clock)

    @property
    def ledger(self) -> Ledger:
        """The ownership ledger of account resources (ledger.py)."""
        return self._once("store", "ledger", self._new_ledger)

    def _new_ledger(self) -> Ledger:
        from mistral_gateway.stores.ledger import Ledger

        return Ledger(self.settings.ledger_table_name, self.aws_client("dynamodb"))

    @property
    def responses(self) -> ResponsesStore:
        """The stored /v1/responses of every caller (stores/responses.py)."""
        return self._once("store", "responses", self._new_responses)

    def _new_responses(self) -> ResponsesStore:
        from mistral_gateway.stores.responses import ResponsesStore

        return ResponsesStore(self.settings.responses_table_name, self.aws_client("dynamodb"))

    @property
    def secrets(self) -> Any:
        """Powertools' Secrets Manager provider (it caches each value for SECRET_MAX_AGE_SECONDS)."""
        return self._once("store", "secrets", self._new_secrets)

    def _new_secrets(self) -> Any:
        from aws_lambda_powertools.utilities.parameters import SecretsProvider

        return SecretsProvider(boto3_client=self.aws_client("secretsmanager"))

    @property
    def keys(self) -> Keys:
        """The upstreams' keys from Secrets Manager (upstream/secret.py)."""
        return self._once("store", "keys", self._new_keys)

    def _new_keys(self) -> Keys:
        from mistral_gateway.upstream.secret import Keys

        config = self.settings
        return Keys(lambda: self.secrets, config.secret_id, config.self_hosted_secret_id, config.secret_max_age_seconds)

    def upstream(self, name: str) -> Upstream:
        """One upstream (mistral | self-hosted) as a call needs it: circuits, retry policy, key (upstream/retry.py)."""
        return self._once("upstream", name, lambda: self._new_upstream(name))

    def _new_upstream(self, name: str) -> Upstream:
        from mistral_gateway.upstream.retry import MISTRAL, RetryPolicy, Upstream

        read_key = self.keys.mistral if name == MISTRAL else self.keys.self_hosted
        return Upstream(name, self.circuits(name), RetryPolicy.from_settings(self.settings), read_key)

    def upstream_and_sdk(self, name: str = "mistral") -> tuple[Upstream, Any]:
        """What an SDK call takes (upstream/mistral.py): the upstream and its SDK client."""
        return self.upstream(name), self.sdk(name)

    def sdk(self, upstream: str) -> Any:
        """The mistralai SDK client of one upstream (mistral | self-hosted)."""
        from mistral_gateway.upstream import mistral

        read_key = self.upstream(upstream).read_key
        return self._once("sdk", upstream, lambda: mistral.new_sdk(upstream, self.settings, read_key))

    def circuits(self, upstream: str) -> Circuits:
        """One upstream's circuits: upstream-wide, and one per model (circuit.py). Mistral being down never blocks
        the self-hosted server, nor the reverse; one model failing never blocks the others."""
        from mistral_gateway.policies.circuit import Circuits

        config = self.settings
        return self._once(
            "breaker",
            upstream,
            lambda: Circuits(
                config.circuit_failure_threshold, config.circuit_cooldown_seconds, config.circuit_models_threshold
            ),
        )

    def breaker(self, upstream: str, model: str | None = None) -> CircuitBreaker:
        """The circuit of one model on an upstream, or (model None) the upstream-wide one."""
        return self.circuits(upstream).of(model)

    def http_client(self, name: str, build: Callable[[], T]) -> T:
        """A plain HTTP client kept for the container's life (the pass-through's)."""
        return self._once("http", name, build)

    @property
    def prices(self) -> Prices:
        """USD per million tokens (input, output): list prices, overridden by the ModelPrices parameter."""
        return self._once("store", "prices", self._new_prices)

    def _new_prices(self) -> Prices:
        from mistral_gateway.platform.economics import LIST_PRICES, Prices

        return Prices({**LIST_PRICES, **self.settings.model_prices})


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cycle collector off while a piece is built. Building the first AWS client imports botocore and
    allocates some hundred thousand objects that all stay alive: the collections they trigger find nothing
    to free and only lengthen the cold start (docs/benchmarks.md, "Clients built once per container")."""
    if not gc.isenabled():  # nested, or paused by someone else: leave it to them
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


_current: Container | None = None
_starting = threading.Lock()
# A process that hosts several functions (gateway_dev's `make serve`) runs each request as its function's own
# container, as the cloud does; in Lambda nothing binds, and `current()` is the one container.
_bound: contextvars.ContextVar[Container | None] = contextvars.ContextVar("mistral_gateway_container", default=None)


def start(settings: Settings | None = None, *, clock: Callable[[], float] = wall_clock) -> Container:
    """Build the container's state (what a cold start does) and make it the one `current()` returns."""
    global _current
    _current = Container(settings, clock=clock)
    return _current


@contextlib.contextmanager
def bound(container: Container) -> Iterator[Container]:
    """Run the code inside as `container`'s (and the threads it starts with a copy of this context)."""
    token = _bound.set(container)
    try:
        yield container
    finally:
        _bound.reset(token)


def current() -> Container:
    """The container's state, started from the environment on first use if no handler started it."""
    own = _bound.get()
    if own is not None:
        return own
    if _current is None:
        with _starting:
            if _current is None:
                start()
    assert _current is not None
    return _current


def settings() -> Settings:
    return current().settings


def _aws_session() -> botocore.session.Session:
    """botocore's session, not boto3's: boto3 adds resources and a session wrapper the gateway never uses, and
    importing it cost a cold cache hit 15-20 ms more than botocore alone (docs/decisions.md). Its clients are
    the same botocore clients either way. (The miss path still loads boto3: Powertools Parameters imports it.)"""
    import botocore.session

    return botocore.session.get_session()
