"""Work that may wait until the caller has its response: the store of a plain (not streamed) miss's answer.

Lambda sends a function's response as soon as the runtime has posted it, but keeps the execution environment
(and bills it) until every extension has asked for its next event. An *internal extension* (a thread of the
function's own process, registered with Lambda's Extensions API) may therefore finish work after the
response: here, the DynamoDB PutItem that stores the answer and ends its single-flight lease, a few
milliseconds a caller no longer waits for. A thread of the handler's own would not do: Lambda freezes the
process when the invocation ends, so it would resume only when the next request thaws the container, or
never.

- `later(work)` runs `work` after the response when the invocation is collected (`collected()`: by the
  buffered handler's wrapper, `answered_first`; by the streaming app, which hands it over with `after_sent`;
  or by the local runner), else at once, exactly as before;
- the extension runs an invocation's collected work once the response is out, then asks for the next event;
  until then Lambda sends this container no other request, so the next request here finds the answer stored
  (in the table and in recent.py's memory);
- when the extension cannot register (not in Lambda, or Lambda refuses it), nothing is handed to it: in
  Lambda the work runs before the response, as it always did; outside it, the local runner and the streaming
  app run it on a thread once the response is sent (`make serve`, the tests).

docs/decisions.md ("The store after the response") says what a store that never lands costs.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import http.client
import json
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from mistral_gateway.platform import observability
from mistral_gateway.platform.observability import logger, metrics

Work = Callable[[], None]

# The work collected for the running invocation (None: nobody runs work after the response; `later` runs it
# at once). A batch's items run in copies of the request's context: they append to the same list.
_COLLECTED: contextvars.ContextVar[list[Work] | None] = contextvars.ContextVar("after_response", default=None)


def later(work: Work) -> None:
    """Run `work` once the caller has its response, when something will (see the module docstring); else now."""
    collected_work = _COLLECTED.get()
    if collected_work is None:
        work()
    else:
        collected_work.append(work)


def collecting() -> bool:
    return _COLLECTED.get() is not None


@contextlib.contextmanager
def collected(*, counted: bool = False) -> Iterator[list[Work]]:
    """Inside the block, `later` collects work into the list it yields, for the caller to run after the
    response (`run`). `counted`: the work will run on a thread of its own (`after_sent` outside Lambda), and
    `settle` waits for each piece from the moment it is collected, before the response is written."""
    collected_work: list[Work] = _Counted() if counted else []
    token = _COLLECTED.set(collected_work)
    try:
        yield collected_work
    finally:
        _COLLECTED.reset(token)
        if isinstance(collected_work, _Counted):
            collected_work.release()  # not handed to a thread (an error, an extension): settle() must not wait


def run(collected_work: list[Work]) -> None:
    """Each piece in turn (one failing does not stop the rest), then the metrics they counted: the handler's
    own were flushed when it returned. Work they hand to `later` runs at once."""
    token = _COLLECTED.set(None)
    try:
        for work in collected_work:
            try:
                work()
            except Exception as error:  # a store fails open inside; anything else is a bug: logged, not raised
                observability.log_unexpected("work after the response failed", error)
    finally:
        _COLLECTED.reset(token)
    if metrics.metric_set:
        try:
            metrics.flush_metrics()
        except Exception as error:  # metrics must not stop the extension that runs this
            observability.log_unexpected("flushing the metrics of the work after the response failed", error)


@contextlib.contextmanager
def at_once() -> Iterator[None]:
    """Inside the block, `later` runs work at once: a batch's items, one of which may wait on another's lease
    (identical items), which would otherwise be stored only after the whole batch had answered."""
    token = _COLLECTED.set(None)
    try:
        yield
    finally:
        _COLLECTED.reset(token)


# ---------------------------------------------------------------------------------------------------------
# The internal extension

EXTENSIONS_API = "2020-01-01/extension"
EXTENSION_NAME = "mistral-gateway-after-response"
EXTENSION_ID_HEADER = "Lambda-Extension-Identifier"  # the Runtime API's, not a caller's
REGISTER_TIMEOUT_S = 2.0  # the Runtime API is on the container's loopback; a registration that hangs is refused


class RuntimeApiError(Exception):
    """The Extensions API answered with an error, or not at all."""


class PostResponseExtension:
    """An internal extension: a thread that, for each invocation, waits for the handler to hand over the work
    it collected, runs it, and only then asks Lambda for the next event. Registered for INVOKE events only
    (an internal extension may not register for SHUTDOWN)."""

    def __init__(self, runtime_api: str, extension_id: str) -> None:
        self.runtime_api = runtime_api
        self.extension_id = extension_id
        self.alive = True
        self._alive_lock = threading.Lock()  # a hand-over and the extension stopping never cross
        self._handed: queue.Queue[tuple[str, list[Work], contextvars.Context]] = queue.Queue()
        self._thread = threading.Thread(target=self._serve, name=EXTENSION_NAME, daemon=True)

    @classmethod
    def register(cls, runtime_api: str) -> PostResponseExtension:
        status, headers, body = _call(
            runtime_api,
            "POST",
            f"/{EXTENSIONS_API}/register",
            {"Lambda-Extension-Name": EXTENSION_NAME, "Content-Type": "application/json"},
            json.dumps({"events": ["INVOKE"]}).encode(),
            timeout=REGISTER_TIMEOUT_S,
        )
        extension_id = headers.get(EXTENSION_ID_HEADER.lower())
        if status != 200 or not extension_id:
            raise RuntimeApiError(f"registration refused: HTTP {status} {body[:200]!r}")
        return cls(runtime_api, extension_id)

    def start(self) -> PostResponseExtension:
        self._thread.start()  # its first request for an event tells Lambda this extension's init is done
        return self

    def hand_over(self, request_id: str, collected_work: list[Work]) -> None:
        """The handler of `request_id` has returned: its work (possibly none) may run."""
        with self._alive_lock:
            if self.alive:
                self._handed.put((request_id, collected_work, contextvars.copy_context()))
                return
        run(collected_work)  # stopped since the handler began: nobody would run it later

    def _serve(self) -> None:
        try:
            while True:
                event = self._next_event()
                if event.get("eventType") == "INVOKE":
                    self._finish(str(event.get("requestId", "")), float(event.get("deadlineMs", 0)) / 1000)
        except Exception as error:  # the Runtime API failed: run what was handed over, say so, stop
            with self._alive_lock:
                self.alive = False  # from now on handlers run their work themselves
            observability.log_unexpected("the post-response extension stopped; stores run before answering", error)
            self._drain()
            self._report_exit(error)

    def _finish(self, request_id: str, deadline: float) -> None:
        """Run the work the handler of `request_id` hands over, waiting for it at most until the invocation's
        deadline (a handler that never returned has timed out, and Lambda resets the container anyway)."""
        while True:
            try:
                handed_id, collected_work, context = self._handed.get(timeout=max(0.0, deadline - time.time()))
            except queue.Empty:
                return
            context.run(run, collected_work)
            if handed_id == request_id or not handed_id or not request_id:
                return  # this invocation's (an id missing on either side: taken as this one's)

    def _drain(self) -> None:
        """Work handed over before the extension stopped still runs (late rather than never)."""
        while not self._handed.empty():
            _, collected_work, context = self._handed.get_nowait()
            context.run(run, collected_work)

    def _next_event(self) -> dict[str, Any]:
        # No timeout: between invocations Lambda freezes the container with this request open.
        status, _, body = _call(
            self.runtime_api,
            "GET",
            f"/{EXTENSIONS_API}/event/next",
            {EXTENSION_ID_HEADER: self.extension_id},
            None,
            timeout=None,
        )
        if status != 200:
            raise RuntimeApiError(f"event/next: HTTP {status} {body[:200]!r}")
        event: dict[str, Any] = json.loads(body)
        return event

    def _report_exit(self, error: Exception) -> None:
        with contextlib.suppress(Exception):
            _call(
                self.runtime_api,
                "POST",
                f"/{EXTENSIONS_API}/exit/error",
                {
                    EXTENSION_ID_HEADER: self.extension_id,
                    "Lambda-Extension-Function-Error-Type": "Extension.Stopped",
                },
                json.dumps({"errorMessage": type(error).__name__, "errorType": "Extension.Stopped"}).encode(),
                timeout=REGISTER_TIMEOUT_S,
            )


def _call(
    runtime_api: str, method: str, path: str, headers: dict[str, str], body: bytes | None, *, timeout: float | None
) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection(runtime_api, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, {name.lower(): value for name, value in response.getheaders()}, response.read()
    except (OSError, http.client.HTTPException) as error:  # no answer, or one that is not HTTP
        raise RuntimeApiError(f"{method} {path}: {type(error).__name__}") from error
    finally:
        connection.close()


_EXTENSION: PostResponseExtension | None = None


def start_extension(environ: dict[str, str] | None = None) -> PostResponseExtension | None:
    """Register and start the extension when this process runs in Lambda (its Runtime API is set) and has not
    yet; None (and the work runs before answering) when it cannot. Called while the handler module is imported:
    Lambda takes an internal extension's registration only during the container's init."""
    global _EXTENSION
    runtime_api = (os.environ if environ is None else environ).get("AWS_LAMBDA_RUNTIME_API", "")
    if _EXTENSION is not None or not runtime_api:
        return _EXTENSION
    try:
        _EXTENSION = PostResponseExtension.register(runtime_api).start()
    except RuntimeApiError as error:
        logger.warning(
            "no post-response extension: answers are stored before the response", extra={"reason": str(error)}
        )
    return _EXTENSION


def stop_extension() -> None:
    """Forget the extension (tests): the handlers stop handing work to it."""
    global _EXTENSION
    _EXTENSION = None


def can_wait_for_the_response(environ: dict[str, str] | None = None) -> bool:
    """Whether work may wait until a response is sent (the streaming app asks): yes with a live extension; in
    Lambda without one, no (the invocation ends with the response and the process is frozen mid-work); outside
    Lambda, yes (`after_sent` runs it on a thread)."""
    extension = _EXTENSION
    if extension is not None and extension.alive:
        return True
    return not (os.environ if environ is None else environ).get("AWS_LAMBDA_RUNTIME_API")


def on_threads() -> bool:
    """Whether `after_sent` will run work on a thread of its own: no live extension was started (outside
    Lambda; in Lambda without one, the streaming app collects nothing: `can_wait_for_the_response`)."""
    return _EXTENSION is None


def after_sent(request_id: str, collected_work: list[Work]) -> None:
    """An invocation's response has been sent (the streaming function's app, under the Web Adapter): its
    work runs now, on the extension's thread (which then asks Lambda for the next event; every invocation
    hands over, work or none; an extension that has stopped runs it at once), or outside Lambda on a thread
    of its own. The caller hands over nothing for a request that is no invocation (the readiness check)."""
    extension = _EXTENSION
    if extension is not None:
        extension.hand_over(request_id, collected_work)
    elif collected_work:
        on_a_thread(collected_work)()


# Pieces of work to run, or running, on threads of their own (outside Lambda: `make serve`, the tests), for
# `settle`.
_ON_THREADS = 0
_ON_THREADS_CHANGED = threading.Condition()


def _count(pieces: int) -> None:
    global _ON_THREADS
    with _ON_THREADS_CHANGED:
        _ON_THREADS += pieces
        _ON_THREADS_CHANGED.notify_all()


class _Counted(list[Work]):
    """Collected work that `settle` waits for from the moment each piece is collected (`later` appends): the
    streaming app writes its response before it hands the work over, and a client that has the response must
    not settle before the store that response started. The count is handed on with the work (`take`), or
    given back when the collection ends without it (`release`)."""

    def __init__(self) -> None:
        super().__init__()
        self._counted = 0
        self._lock = threading.Lock()

    def append(self, work: Work) -> None:
        with self._lock:
            self._counted += 1
            _count(1)
        super().append(work)

    def take(self) -> int:
        """The pieces counted so far, now the taker's to give back (`_count(-pieces)`)."""
        with self._lock:
            pieces, self._counted = self._counted, 0
        return pieces

    def release(self) -> None:
        pieces = self.take()
        if pieces:
            _count(-pieces)


def on_a_thread(collected_work: list[Work], *, then: Callable[[], None] | None = None) -> Callable[[], None]:
    """Outside Lambda: a start() that runs the work on a thread of its own (in the context of this call: the
    invocation's container and log keys), then `then`. `settle` waits for it from now on, or from the moment
    each piece was collected (`collected(counted=True)`), until both have run."""
    context = contextvars.copy_context()
    if isinstance(collected_work, _Counted):
        pieces = collected_work.take()
    else:
        pieces = len(collected_work)
        _count(pieces)

    def finish() -> None:
        try:
            context.run(run, collected_work)
        finally:
            if then is not None:
                then()
            _count(-pieces)

    return threading.Thread(target=finish, name="after response", daemon=True).start


def settle(timeout: float = 30.0) -> bool:
    """Wait until no work collected for, or started by, `after_sent` on a thread of its own is left (tests, the
    benchmark); False if some still is after `timeout`."""
    with _ON_THREADS_CHANGED:
        return _ON_THREADS_CHANGED.wait_for(lambda: _ON_THREADS == 0, timeout)


def answered_first(handler: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """Outermost decorator of a Lambda handler: the work its invocation hands to `later` is collected and,
    once the handler has returned (its metrics flushed), given to the extension to run after the response.
    Without a live extension, or when the local runner collects it itself, the handler runs as it is."""

    @functools.wraps(handler)
    def wrapped(event: Any, context: Any) -> Any:
        extension = _EXTENSION
        if extension is None or not extension.alive or collecting():
            return handler(event, context)
        with collected() as collected_work:
            try:
                return handler(event, context)
            finally:
                extension.hand_over(getattr(context, "aws_request_id", ""), collected_work)

    return wrapped
