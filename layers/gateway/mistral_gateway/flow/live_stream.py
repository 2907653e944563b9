"""A stream in flight from Mistral to one caller: the base of every streamed answer the gateway forwards.

A reader thread forwards each event the moment it is complete, byte for byte, and then settles the stream
(store, budget, metrics); the caller's side (`events()`) only drains a bounded queue and sends SSE comments
while Mistral is silent, so a caller who hangs up never blocks the reader. A cut, an idle timeout, the total
cap or a caller who hangs up end the stream with an in-band error event (or nothing, for a caller who is gone).

Each kind of stream says how it reads Mistral's events (`_pump`) and what it does once they end (`_settle`):
chat and FIM (streaming.py), /v1/responses (responses_stream.py), conversations and agents (account/streams.py).
"""

from __future__ import annotations

import contextvars
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from mistral_gateway.container import current, settings
from mistral_gateway.flow import answers
from mistral_gateway.platform import observability
from mistral_gateway.platform.deadline import Deadline
from mistral_gateway.platform.errors import GatewayError, UpstreamError, UpstreamTimeout
from mistral_gateway.platform.observability import logger
from mistral_gateway.policies import quota
from mistral_gateway.policies.cache import MAX_STORED_BYTES
from mistral_gateway.requests.http import CacheControl
from mistral_gateway.upstream import mistral as upstream
from mistral_gateway.upstream import sse

_END = object()  # the reader's last item on the queue
# Memory per stream, flat in its length. The caller's side holds at most QUEUE_EVENTS events: when the caller
# stops reading, the reader stops too (and TCP pushes back on Mistral). What is kept for the cache is at most
# what the cache can store: Mistral's events compressed as they pass (cache.MAX_STORED_BYTES) and the
# answer's text up to TEXT_LIMIT_BYTES (text compresses 2-4x, so past that the answer cannot fit an item).
# Past either, the answer is forwarded whole but not stored, and only finish reasons and usage are followed.
QUEUE_EVENTS = 64
TEXT_LIMIT_BYTES = 4 * MAX_STORED_BYTES
_PUT_WAIT_S = 0.1  # how often a reader blocked on a full queue looks at the clock and for a hung-up caller


@dataclass
class StreamOutcome:
    """How a live stream ended: what the "request served" line and the metrics say about it."""

    ended: str = "streaming"  # complete | incomplete | cut | idle_timeout | too_long | hung_up | error
    stored: bool = False
    too_large_to_store: bool = False  # the answer outgrew what the cache can store: not collected past that
    events: int = 0
    usage: dict[str, int] = field(default_factory=dict)
    first_token_ms: float | None = None
    duration_ms: float = 0.0

    def log_fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {"stream_ended": self.ended, "stream_events": self.events, "stored": self.stored}
        if self.too_large_to_store:
            fields["cache_skipped"] = "too_large"
        if self.first_token_ms is not None:
            fields["time_to_first_token_ms"] = round(self.first_token_ms, 2)
        fields["stream_duration_ms"] = round(self.duration_ms, 2)
        return {**fields, **self.usage}


class LiveStream:
    """A streamed miss in flight. The reader thread owns the upstream and all bookkeeping (assembly, store,
    budget, metrics); the caller's side only drains a queue, so a caller that hangs up never blocks it."""

    def __init__(
        self,
        opened: upstream.UpstreamStream,
        key: str,
        control: CacheControl,
        spending: quota.Spending,
        deadline: Deadline,
        started: float,
        headers: dict[str, str],
        *,
        upstream: str = "mistral",
        model: str | None = None,
    ) -> None:
        self.headers = headers
        self._model = model
        self.outcome = StreamOutcome()
        self._upstream = opened
        self._key = key
        self._control = control
        self._spending = spending
        self._deadline = deadline
        self._started = started
        self._upstream_name = upstream
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=QUEUE_EVENTS)
        self._stop_reason: str | None = None
        self._finished = threading.Event()
        # The reader runs in this request's context (its container's state, when a runner gives each function
        # its own: gateway_dev's `make serve`).
        context = contextvars.copy_context()
        self._reader = threading.Thread(target=context.run, args=(self._read,), name="mistral-stream", daemon=True)
        self._reader.start()

    # -- the caller's side ------------------------------------------------------------------------------------
    def events(self) -> Iterator[bytes]:
        """What to send, as it becomes available: Mistral's events, keep-alive comments while it is silent,
        and an error event if the stream cannot complete. Ends when the reader has finished its bookkeeping."""
        keepalive = settings().stream_keepalive_ms / 1000
        while True:
            try:
                item = self._queue.get(timeout=min(keepalive, max(0.05, self._deadline.remaining_ms() / 1000)))
            except queue.Empty:
                if self._deadline.remaining_ms() <= 0:
                    self.stop("too_long")
                    continue  # the reader queues the error event and ends
                yield sse.KEEPALIVE
                continue
            if item is _END:
                return
            yield item

    def stop(self, reason: str = "hung_up") -> None:
        """End the stream early (the caller hung up, or it ran past its cap): Mistral stops writing."""
        if self._stop_reason is None:
            self._stop_reason = reason
        self._upstream.close()

    def wait(self, timeout: float | None = None) -> StreamOutcome:
        """The outcome, once the reader has stored, settled and counted (or `timeout` seconds passed)."""
        self._finished.wait(timeout)
        return self.outcome

    # -- the reader thread --------------------------------------------------------------------------------------
    def _read(self) -> None:
        ended = self._pump()
        failure = failure_of(ended)
        if failure is not None and ended != "hung_up":
            self._put(sse.error_event(failure.body()))
        try:
            self._settle(ended)
        except Exception as error:  # bookkeeping must never keep the caller's stream open
            observability.log_unexpected("stream bookkeeping failed", error)
        finally:
            self._last_words()
            self._finished.set()
            self._put(_END)

    def _pump(self) -> str:
        """Forward Mistral's events; how the stream ended (complete | incomplete | cut | idle_timeout | ...)."""
        raise NotImplementedError

    def _settle(self, ended: str) -> None:
        """Store, settle the budget, count: after the last event was forwarded (or the stream was cut)."""
        raise NotImplementedError

    def _last_words(self) -> None:
        """What the caller gets after the bookkeeping, before the stream ends (chat's [DONE]: after the store)."""

    def _close_books(self, ended: str, usage: dict[str, int], *, early: bool, circuit: str | None = None) -> None:
        """What every stream does when it ends: its outcome; the caller's budget settled (to the whole
        reservation when Mistral sent no usage: what it billed is unknown, and less could let a caller
        overspend); a stream that ended `early` counted, and told to `circuit`'s model when Mistral broke it."""
        outcome = self.outcome
        outcome.ended = ended
        outcome.duration_ms = (time.perf_counter() - self._started) * 1000
        outcome.usage = usage
        tokens = usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0)
        self._spending.settle(tokens if usage else self._spending.reserved_tokens)
        if early:
            observability.count(observability.STREAMS_ENDED_EARLY)
            if ended in ("cut", "idle_timeout"):
                kind = "idle_timeout" if ended == "idle_timeout" else "connection"
                upstream.stream_failed(current().upstream(self._upstream_name), kind, circuit)

    def _meter(self, usage: dict[str, int], model: str | None) -> None:
        """A pass-through stream's spend (Responses, conversations, agents): its line shows the prompt and
        completion tokens Mistral reported, which are accounted and priced as a miss of `model`."""
        self.outcome.usage = {key: usage[key] for key in ("prompt_tokens", "completion_tokens") if key in usage}
        if usage:
            answers.account(b"", usage)
            current().prices.headers_and_metrics(model, "MISS", usage)

    def _report(self) -> None:
        """The stream's metrics and its keys on the "request served" line."""
        outcome = self.outcome
        if outcome.first_token_ms is not None:
            observability.milliseconds(observability.TIME_TO_FIRST_TOKEN, outcome.first_token_ms)
        observability.milliseconds(observability.STREAM_DURATION, outcome.duration_ms)
        logger.append_keys(**outcome.log_fields())

    def _follow(
        self, chunks: Iterable[bytes], splitter: sse.EventSplitter, on_event: Callable[[bytes], None]
    ) -> str | None:
        """Hand each complete event to `on_event` until Mistral's body ends, the stream runs past its cap, or the
        read fails. None when the body ended by itself (the stream then says whether it was complete), else how
        it ended: the stop reason (hung_up, too_long), or idle_timeout / cut."""
        try:
            for data in chunks:
                for event in splitter.feed(data):
                    on_event(event)
                if self._deadline.remaining_ms() <= 0:
                    self._stop_reason = self._stop_reason or "too_long"
                    self._upstream.close()
                    break
        except Exception as error:  # the read failed: a timeout, a cut connection, or our own stop()
            return self._stop_reason or ("idle_timeout" if is_timeout(error) else "cut")
        return self._stop_reason

    def _forward(self, event: bytes, payload: str | None) -> None:
        self.outcome.events += 1
        if self.outcome.first_token_ms is None and payload is not None and payload != "[DONE]":
            self.outcome.first_token_ms = (time.perf_counter() - self._started) * 1000
        self._put(event)

    def _put(self, item: Any) -> None:
        """Hand one item to the caller's side, waiting while its queue is full (a caller reading slowly, or not
        at all): Mistral's stream waits with it. A caller who hung up gets nothing more; a stream past its
        total cap is ended from here too, since a reader that waits does not reach the loop's own check."""
        while True:
            if self._stop_reason == "hung_up":
                return
            try:
                self._queue.put(item, timeout=_PUT_WAIT_S)
                return
            except queue.Full:
                if self._deadline.remaining_ms() <= 0 and self._stop_reason is None:
                    self._stop_reason = "too_long"
                    self._upstream.close()


def is_timeout(error: Exception) -> bool:
    import httpx2

    return isinstance(error, httpx2.TimeoutException)


def failure_of(ended: str) -> GatewayError | None:
    """The in-band error a stream that did not complete ends with."""
    if ended in ("complete", "incomplete", "hung_up"):
        return None
    if ended == "idle_timeout":
        seconds = settings().stream_idle_timeout_ms / 1000
        return UpstreamTimeout(f"Mistral sent nothing for {seconds:g} s; the stream was ended before it finished.")
    if ended == "too_long":
        return UpstreamTimeout("The stream reached the gateway's time limit before Mistral finished.")
    return UpstreamError("Mistral's stream was cut off before it finished; the answer is incomplete.")
