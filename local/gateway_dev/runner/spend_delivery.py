"""CloudWatch Logs' subscription filter, locally: the functions' "request served" lines to the spend function.

In the cloud, a subscription filter on the API and streaming functions' log groups (template.yaml) delivers
their served lines, batched, to the SpendFunction (functions/spend/), which adds them per key, day and model to
the quota table (mistral_gateway/policies/spend_batches.py). Here the functions' handlers run in this process
(bridge.py, asgi.py), and their Powertools Logger writes the lines to a stream: a logging handler on that
Logger takes each served line as the formatter writes it (the running invocation's own keys), and a delivery
thread hands what has gathered, at once, to the template's SpendFunction handler as an awslogs event (base64
gzip JSON, as CloudWatch sends it), invoked as bridge.py invokes any function.

Like a subscription, delivery is asynchronous: the request never waits on it. It is prompt (the thread wakes
on the first line; a reader right after a request sees its spend within milliseconds), and `flush()` waits
until every line written so far is applied: `keys usage` (gateway_dev/ops/spend.read_counters) and the test
fixtures call it. A delivery that fails is retried twice, as Lambda retries an asynchronous invocation, then
kept in `dead_letters` (the on-failure destination's queue, in the cloud) and logged.
"""

from __future__ import annotations

import atexit
import io
import logging
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from gateway_dev.cloud.template import Template

SPEND_FUNCTION = "SpendFunction"
LOG_GROUP = "/aws/lambda/mistral-gateway-local"
MAX_EVENTS = 500  # lines per delivery at most (CloudWatch batches by size; this only bounds one invocation)
ATTEMPTS = 3  # Lambda's asynchronous invocation: the call and two retries (template: MaximumRetryAttempts)

_log = logging.getLogger(__name__)
# (template, logical id) -> the loaded function and its handler module.
Loader = Callable[[Template, str], tuple[Any, Any]]


class _CurrentStderr(io.TextIOBase):
    """Whatever sys.stderr is when a line is written (a test's captured stream, while it runs)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


class SpendDelivery(logging.Handler):
    """One process's subscription: served lines in, awslogs deliveries to the spend handler out."""

    def __init__(self, template: Template, load: Loader) -> None:
        super().__init__(level=logging.INFO)
        self.function, module = load(template, SPEND_FUNCTION)
        # Its lines (its own log group in the cloud) to stderr as it is when each is written (a running test's
        # captured stream, so `make test` stays quiet): its Logger bound the sys.stdout of its import (a test's
        # captured one, closed after that test), and a local tool's stdout is its output (`make invoke` prints
        # the handler's result there), which a line written later must not follow.
        handler = getattr(getattr(module, "logger", None), "registered_handler", None)
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(_CurrentStderr())
            # Only its warnings and errors: a routine "spend applied" per request would double what `make serve`
            # prints (in the cloud those lines are in the spend function's own log group, not beside the gateway's).
            handler.setLevel(logging.WARNING)
        self.log_stream = f"{time.strftime('%Y/%m/%d')}/[$LATEST]{uuid.uuid4().hex}"
        self.pending: list[dict[str, Any]] = []
        self.delivering = 0  # lines taken by the thread and not yet applied (or dead-lettered)
        self.sequence = 0
        self.subscribed = True  # False between a test's end and the next gateway (unsubscribe)
        self.dead_letters: list[dict[str, Any]] = []  # awslogs events that could not be applied
        self.ready = threading.Condition()
        self.thread = threading.Thread(target=self._run, name="spend-delivery", daemon=True)
        self.thread.start()

    # -- the subscription filter: { $.message = "request served" } -------------------------------------------
    def emit(self, record: logging.LogRecord) -> None:
        if not self.subscribed or record.getMessage() != "request served":
            return
        try:
            message = self.format(record)  # the very line the stream gets (Powertools' formatter)
        except Exception:  # pragma: no cover - logging must never fail a request
            self.handleError(record)
            return
        with self.ready:
            self.sequence += 1
            event_id = f"{time.time_ns()}{self.sequence:012d}"
            self.pending.append({"id": event_id, "timestamp": int(record.created * 1000), "message": message})
            self.ready.notify_all()

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until every line emitted so far has been delivered (applied or dead-lettered)."""
        deadline = time.monotonic() + timeout
        with self.ready:
            while self.pending or self.delivering:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("spend delivery did not finish")
                self.ready.wait(left)

    # -- the delivery -----------------------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self.ready:
                while not self.pending:
                    self.ready.wait()
                events, self.pending = self.pending[:MAX_EVENTS], self.pending[MAX_EVENTS:]
                self.delivering = len(events)
            try:
                self._deliver(events)
            finally:
                with self.ready:
                    self.delivering = 0
                    self.ready.notify_all()

    def _deliver(self, events: list[dict[str, Any]]) -> None:
        from mistral_gateway.policies.spend_batches import encode

        payload = {
            "messageType": "DATA_MESSAGE",
            "owner": "123456789012",
            "logGroup": LOG_GROUP,
            "logStream": self.log_stream,
            "subscriptionFilters": ["ServedLinesToSpend"],
            "logEvents": events,
        }
        event = encode(payload)
        for attempt in range(1, ATTEMPTS + 1):
            try:
                self.function.invoke(event)
                return
            except Exception as error:  # the invocation failed: Lambda would retry it
                _log.warning("spend delivery failed (attempt %d of %d): %r", attempt, ATTEMPTS, error)
        self.dead_letters.append(event)


_INSTALLED: dict[str, SpendDelivery] = {}
_LOCK = threading.Lock()
# Set (to anything) by the benchmark: it times the request path, and in the cloud the spend function runs in a
# Lambda of its own, never in the request's process; here its deliveries would share the GIL with what is timed.
OFF = "GATEWAY_LOCAL_SPEND_DELIVERY_OFF"


def install(template: Template, load: Loader, logical_id: str | None = None) -> SpendDelivery | None:
    """Subscribe the gateway's Logger to the spend function, once per process (idempotent). With a function's
    logical id, only if the template subscribes that function's log group (the API and streaming functions, not
    the authorizer nor the spend function itself); None when nothing is subscribed. `load` gives a function of
    the template and its handler module (runner/functions.py's, handed in: that module installs this one)."""
    if SPEND_FUNCTION not in template.resources or os.environ.get(OFF):
        return None
    if logical_id is not None and logical_id not in subscribed_functions(template):
        return None
    with _LOCK:
        delivery = _INSTALLED.get("delivery")
        if delivery is None:
            from mistral_gateway.platform.observability import logger

            delivery = _INSTALLED["delivery"] = SpendDelivery(template, load)
            delivery.setFormatter(logger.registered_formatter)
            logger.addHandler(delivery)
            atexit.register(_deliver_the_rest)  # a process that ends without LocalStack.stop (which flushes first)
        delivery.subscribed = True
        return delivery


def subscribed_functions(template: Template) -> set[str]:
    """The functions whose log group has a subscription filter to the spend function in the template."""
    destination = {"Fn::GetAtt": [SPEND_FUNCTION, "Arn"]}
    groups = {
        str(resource["Properties"]["LogGroupName"].get("Ref"))
        for resource in template.resources.values()
        if resource.get("Type") == "AWS::Logs::SubscriptionFilter"
        and resource["Properties"].get("DestinationArn") == destination
        and isinstance(resource["Properties"].get("LogGroupName"), dict)
    }
    return {
        logical_id
        for logical_id in template.resources_of_type("AWS::Serverless::Function")
        if (template.resources[logical_id]["Properties"].get("LoggingConfig") or {}).get("LogGroup")
        in [{"Ref": group} for group in groups]
    }


def flush(timeout: float = 30.0) -> None:
    """Every served line written so far in this process is in the quota table (no-op without a subscription)."""
    delivery = _INSTALLED.get("delivery")
    if delivery is not None:
        delivery.flush(timeout)


def unsubscribe() -> None:
    """Deliver what was written, then take no more lines until the next install (a test's AWS ends with it)."""
    delivery = _INSTALLED.get("delivery")
    if delivery is not None:
        delivery.flush()
        delivery.subscribed = False


def _deliver_the_rest() -> None:
    try:
        flush(timeout=5.0)
    except TimeoutError:
        _log.warning("spend delivery: lines left undelivered at exit")
