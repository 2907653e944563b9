"""A template's Lambda functions loaded and invoked in this process, as Lambda would run them.

Concurrency, as Lambda has it: one invocation per container at a time, more containers for more at once.
Powertools keeps each invocation's state on the module's resolver (its router context, middlewares), on the
class BaseRouter (`current_event`, `lambda_context`: one per process) and on the Logger (its appended keys:
correlation id, request id, model, tokens...), and this process serves many requests at once on threads (WSGI
workers, test threads): one read another's log keys, so a caller could be logged or billed (spend.py adds up
the line's keys) as another, or read another's event. So each function has a pool of handler instances
(HandlerPool): each a separate import of the
handler module under a name of its own (its own Powertools app), used by one invocation at a time, the next
one imported when every instance is busy (a scale-out, up to MAX_INSTANCES; past it an invocation waits for
one, as a throttled function's would). A request alone reuses a warm instance, never imports one. And the
Logger's appended keys and BaseRouter's event and context are kept per invocation (invocation_state: the
buffered function's invocations, the streaming function's requests), where each Lambda container has its own.

The instances of one function share that function's mistral_gateway Container (its settings, clients,
in-memory caches, circuits; `own_containers` below, or the process's one): they stand for one function's
request-scoped state, not for its containers' memories, which the tests (they reset or replace the one
container) and `make serve` (one circuit per function, one warm answer cache) expect to be one. An extra
instance's import therefore keeps the function's container instead of starting its own (the handler module's
`container.start()` is its cold start, taken once).
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib.util
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from gateway_dev.cloud.locking import serialize_methods
from gateway_dev.cloud.template import Template
from gateway_dev.runner import response_sending, spend_delivery


@dataclass
class LambdaContext:
    """The parts of Lambda's context object handlers and Powertools read."""

    function_name: str
    memory_limit_in_mb: int = 512
    timeout_seconds: float = 29.0
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    invoked_function_arn: str = ""
    started: float = field(default_factory=time.monotonic)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_seconds - (time.monotonic() - self.started)) * 1000))


# How many instances of one function's handler serve at once in this process (Lambda's scale-out, bounded).
MAX_INSTANCES = 64


class HandlerPool:
    """One function's handler instances, each serving one invocation at a time (see the module docstring)."""

    def __init__(self, code_dir: Path, module_name: str, unique_name: str, function_name: str) -> None:
        self.code_dir = code_dir
        self.module_name = module_name
        self.unique_name = unique_name
        self.function_name = function_name
        first = import_code(code_dir, module_name, unique_name)
        self.handlers: list[Callable[[dict[str, Any], Any], dict[str, Any]]] = [getattr(first, function_name)]
        self.idle = list(self.handlers)
        self.ready = threading.Condition()

    def acquire(self) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
        """An idle instance, else a new one: an instance still running its invocation's post-response work
        is released only after it, as Lambda sends no request to a container until its extensions are done (an
        identical request on another instance waits on the single-flight lease for the stored answer)."""
        with self.ready:
            while not self.idle and len(self.handlers) >= MAX_INSTANCES:
                self.ready.wait()
            if self.idle:
                return self.idle.pop()
            number = len(self.handlers)
            self.handlers.append(self._scaled_out(number))  # rare: imported under the lock, ~10 ms
            return self.handlers[-1]

    def release(self, handler: Callable[[dict[str, Any], Any], dict[str, Any]]) -> None:
        with self.ready:
            self.idle.append(handler)
            self.ready.notify()

    def _scaled_out(self, number: int) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
        """Another instance of the handler: a separate import of its module (its own Powertools app), which
        keeps the function's container (its `container.start()` would replace the one its instances share)."""
        from mistral_gateway import container

        start = container.start
        container.start = lambda *_args, **_kwargs: container.current()  # type: ignore[assignment]
        try:
            module = import_code(self.code_dir, self.module_name, f"{self.unique_name}__instance{number}")
        finally:
            container.start = start  # type: ignore[method-assign]
        return getattr(module, self.function_name)  # type: ignore[no-any-return]


_POOLS: dict[str, HandlerPool] = {}  # by the handler module's unique name: shared by every bridge in the process
_POOLS_LOCK = threading.Lock()


def handler_pool(code_dir: Path, module_name: str, unique_name: str, function_name: str) -> HandlerPool:
    with _POOLS_LOCK:
        pool = _POOLS.get(unique_name)
        if pool is None:
            pool = _POOLS[unique_name] = HandlerPool(code_dir, module_name, unique_name, function_name)
        return pool


@dataclass
class LocalFunction:
    logical_id: str
    handler: Callable[[dict[str, Any], Any], dict[str, Any]]  # the first instance's (the handler module's)
    memory_mb: int
    timeout_seconds: float
    state: Any = None  # its own container (mistral_gateway.container), or None: the process's one
    pool: HandlerPool | None = None  # every instance of the handler; None: only `handler`, one call at a time

    def invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        context = LambdaContext(
            function_name=self.logical_id,
            memory_limit_in_mb=self.memory_mb,
            timeout_seconds=self.timeout_seconds,
            invoked_function_arn=f"arn:aws:lambda:us-east-1:123456789012:function:{self.logical_id}",
        )
        # A context of its own: the invocation's log keys (and whatever else it sets) end with it.
        return contextvars.copy_context().run(self._invoke, event, context)

    def _invoke(self, event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        """The handler's response, returned before the work it left for after the response has run (in Lambda,
        the post-response extension's; here a thread's, started once the response is sent, which then releases
        the instance)."""
        from mistral_gateway.platform import after_response

        with invocation_state(), own_container(self.state):
            if self.pool is None:
                with after_response.collected() as work:
                    try:
                        return self.handler(event, context)
                    finally:
                        after_response.run(work)  # one call at a time: the work, before the next
            pool, handler = self.pool, self.pool.acquire()
            with after_response.collected(counted=True) as work:
                try:
                    return handler(event, context)
                finally:
                    if work:
                        response_sending.after_sent(
                            after_response.on_a_thread(work, then=lambda: pool.release(handler))
                        )
                    else:
                        pool.release(handler)

    def settle(self) -> bool:
        """Wait for the post-response work of every invocation so far (what a test reads next may be its store);
        False if some is still running after 30 s."""
        from mistral_gateway.platform import after_response

        return after_response.settle()


# The Logger's appended keys of the invocation running in this context (None: outside any invocation).
_INVOCATION_LOG_KEYS: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "local_invocation_log_keys", default=None
)


class _InvocationLocalKeys:
    """Mixed into the Powertools formatter's class: its appended keys (`log_format`, which append_keys updates
    and clear_state replaces) are the running invocation's own; outside an invocation, the shared ones."""

    @property
    def log_format(self) -> dict[str, Any]:
        own = _INVOCATION_LOG_KEYS.get()
        if own is not None:
            return own
        shared: dict[str, Any] = self.__dict__["_shared_log_format"]
        return shared

    @log_format.setter
    def log_format(self, value: dict[str, Any]) -> None:
        if _INVOCATION_LOG_KEYS.get() is not None:
            _INVOCATION_LOG_KEYS.set(value)
        else:
            self.__dict__["_shared_log_format"] = value


def _shared_log_keys() -> dict[str, Any]:
    from mistral_gateway.platform.observability import logger

    return logger.registered_formatter.__dict__.get("_shared_log_format") or {}


def invocation_local_log_keys() -> None:
    """Each invocation appends its keys to a copy of the Logger's keys of its own (idempotent): in Lambda a
    container's Logger serves one invocation at a time; here one Logger serves every concurrent invocation,
    and its `clear_state` or `append_keys` for one request would reach another's lines (its `request served`
    line, which spend.py adds up per key). Keys the request adds inside a batch item are Powertools'
    thread-safe ones already (observability.log_keys)."""
    from mistral_gateway.platform.observability import logger

    formatter = logger.registered_formatter
    if isinstance(formatter, _InvocationLocalKeys):
        return
    shared = formatter.__dict__.pop("log_format")
    formatter.__dict__["_shared_log_format"] = shared
    cls = type(formatter)
    formatter.__class__ = type(f"InvocationLocal{cls.__name__}", (_InvocationLocalKeys, cls), {})


@contextlib.contextmanager
def invocation_state() -> Iterator[None]:
    """An invocation's own Logger keys and Powertools router state, for the rest of the current context (a
    buffered function's invocation; a streamed request's ASGI task): see the module docstring."""
    invocation_local_log_keys()
    invocation_local_router_state()
    keys = _INVOCATION_LOG_KEYS.set(dict(_shared_log_keys()))
    router = _INVOCATION_ROUTER_STATE.set({})
    try:
        yield
    finally:
        _INVOCATION_ROUTER_STATE.reset(router)
        _INVOCATION_LOG_KEYS.reset(keys)


@contextlib.contextmanager
def own_container(state: Any) -> Iterator[None]:
    """Run as a function's own container when it has one (see ApiBridge's `own_containers`)."""
    if state is None:
        yield
        return
    from mistral_gateway import container

    with container.bound(state):
        yield


def new_container() -> Any:
    """A function's container: its own settings, clients, caches, budgets and circuits, as a Lambda
    container of that function has (built from this process's environment)."""
    from mistral_gateway import container

    return container.Container(clock=container.wall_clock)


def serialize_metric_flushes() -> None:
    """Lambda runs one invocation per container at a time; this process runs many at once in threads, which all
    share Powertools' one metric set. Its flush checks the set, then serialises it: another thread's flush in
    between made it raise "Must contain at least one metric" (a local 500 under load). One lock around adding
    and flushing restores the container's one-at-a-time view of the metric set."""
    from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider

    serialize_methods(AmazonCloudWatchEMFProvider, ("add_metric", "flush_metrics", "clear_metrics"))


# Powertools' resolvers keep the event and context being resolved on their base class, BaseRouter (one per
# process, like a container's): these are the running invocation's (None: outside any invocation).
_INVOCATION_ROUTER_STATE: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "local_invocation_router_state", default=None
)


class _InvocationLocalAttribute:
    """`BaseRouter.current_event` or `.lambda_context`, read or set on the class or a resolver: the running
    invocation's own value; outside an invocation, one shared value (as Powertools has it)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.shared: dict[str, Any] = {}

    def _values(self) -> dict[str, Any]:
        state = _INVOCATION_ROUTER_STATE.get()
        return self.shared if state is None else state

    def __get__(self, instance: Any, owner: Any = None) -> Any:
        try:
            return self._values()[self.name]
        except KeyError:
            raise AttributeError(self.name) from None

    def __set__(self, instance: Any, value: Any) -> None:
        self._values()[self.name] = value


def invocation_local_router_state() -> None:
    """Powertools' resolve() sets `BaseRouter.current_event` and `.lambda_context` on the class: in Lambda the
    one invocation of the container's; here every concurrent invocation's, so a route could read another
    caller's event (its body, its key id). Made per invocation (idempotent): descriptors on BaseRouter for
    resolvers' reads, and on its metaclass for resolve()'s class-level writes and reads."""
    from aws_lambda_powertools.event_handler.api_gateway import BaseRouter

    if isinstance(BaseRouter.__dict__.get("current_event"), _InvocationLocalAttribute):
        return
    attributes = {name: _InvocationLocalAttribute(name) for name in ("current_event", "lambda_context")}
    for name, attribute in attributes.items():
        if name in BaseRouter.__dict__:
            attribute.shared[name] = BaseRouter.__dict__[name]
    for name, attribute in attributes.items():
        setattr(BaseRouter, name, attribute)  # in the class: what resolvers read (first: no metaclass one yet)
    meta = type(BaseRouter)
    BaseRouter.__class__ = type(f"InvocationLocal{meta.__name__}", (meta,), dict(attributes))  # type: ignore[method-assign]


def load_function(template: Template, logical_id: str) -> LocalFunction:
    """Import a function's handler module from its CodeUri, as Lambda would (the layer is installed)."""
    serialize_metric_flushes()
    spend_delivery.install(
        template, with_module, logical_id
    )  # its served lines to the spend function, if the cloud's are
    code_dir, module_name, function_name = template.code_location(logical_id)
    pool = handler_pool(code_dir, module_name, f"_local_function_{logical_id}_{module_name}", function_name)
    return LocalFunction(
        logical_id=logical_id,
        handler=pool.handlers[0],
        memory_mb=int(template.function_setting(logical_id, "MemorySize") or 128),
        timeout_seconds=float(template.function_setting(logical_id, "Timeout") or 3),
        pool=pool,
    )


def import_code(code_dir: Path, module_name: str, unique_name: str) -> ModuleType:
    """A function's module from its CodeUri, imported once per process under a name of its own (two
    functions may both have an app.py)."""
    module = sys.modules.get(unique_name)
    if module is None:
        spec = importlib.util.spec_from_file_location(unique_name, code_dir / f"{module_name}.py")
        if spec is None or spec.loader is None:
            raise RuntimeError(f"cannot load {code_dir / module_name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[unique_name] = module
        spec.loader.exec_module(module)
    return module


def handler_module(template: Template, logical_id: str) -> ModuleType:
    _code_dir, module_name, _ = template.code_location(logical_id)
    return sys.modules[f"_local_function_{logical_id}_{module_name}"]


def with_module(template: Template, logical_id: str) -> tuple[LocalFunction, Any]:
    """A function of the template and its handler module."""
    return load_function(template, logical_id), handler_module(template, logical_id)
