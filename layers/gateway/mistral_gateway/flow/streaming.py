"""Streamed chat and FIM answers, forwarded event by event as Mistral writes them.

A streamed request reads top to bottom in `completion_stream`: the cache first (a hit replays the stored
events), then validation, the caller's budget, and Mistral's stream opened under the retry policy. Until
Mistral answers 200 every failure is an ordinary error answer (status + JSON, or a stale answer). After
that, `LiveStream` takes over: a reader thread forwards each event the moment it is complete, byte for
byte, while assembling the whole answer; the caller's side (`events()`) sends SSE comments while Mistral is
silent. Only a stream that completed (`[DONE]` seen, every choice finished) is stored; a cut, an idle
timeout, the total cap or a caller who hangs up end it with an in-band error event (or nothing, for a
caller who is gone), no `[DONE]`, nothing stored, and the budget settled to what was spent.
"""

from __future__ import annotations

import contextvars
import json
import queue
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from mistral_gateway.container import current, settings
from mistral_gateway.flow import fallback, service
from mistral_gateway.platform import observability
from mistral_gateway.platform.deadline import Deadline
from mistral_gateway.platform.errors import GatewayError, UpstreamError, UpstreamTimeout
from mistral_gateway.platform.observability import logger
from mistral_gateway.policies import quota
from mistral_gateway.policies.cache import MAX_STORED_BYTES, Compressed
from mistral_gateway.requests import prompt_cache
from mistral_gateway.requests.canonical import canonical_chat
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


def completion_stream(
    route: str,
    body: dict[str, Any],
    *,
    caller: str | None,
    control: CacheControl,
    deadline: Deadline,
    fallbacks: bool = True,
) -> service.Answer | LiveStream:
    """A streamed chat (`route="chat"`) or FIM request: a cached answer replayed as events, or Mistral's
    stream opened and handed to a LiveStream. Raises a GatewayError for anything before the first byte."""
    started = time.perf_counter()
    if route == "chat":
        body = service.in_mistral_dialect(body)
    form, validated = service.admitted_completion(route, body)  # a hit only for what validation accepts
    service.check_fine_tuned(body, caller)
    found = service.look_up(route, canonical_chat(form), service.cache_scope(caller), control)
    if found.hit is not None:
        return service.as_stream(service.priced(service.budgeted_hit(found.hit, caller, body), body))

    arguments = prompt_cache.namespaced(service.upstream_arguments(route, body, validated), caller)
    status = service.count_miss(control)
    spending = current().budgets.spending(caller, body, cappable=True)  # 429 when the caller's budget is spent
    if spending.cap is not None:  # the key's token budget caps what Mistral may write (quota.py)
        arguments = {**arguments, "max_tokens": spending.cap}
    idle_ms = settings().stream_idle_timeout_ms
    try:
        # Fallbacks only while opening: once Mistral's 200 is in, the stream is this target's (fallback.py).
        opened, served = fallback.first_answer(
            arguments["model"],
            lambda target: upstream.open_stream(
                *current().upstream_and_sdk(target.upstream),
                route,
                {**arguments, "model": target.model},
                deadline,
                idle_ms,
            ),
            deadline,
            enabled=fallbacks,
        )
    except service.STALE_ON as error:
        spending.release()
        if found.stale is not None and service.within_stale_window(found.stale):
            return service.as_stream(service.priced(service.stale_answer(found.stale, error), body))
        raise
    except BaseException:
        spending.release()
        raise
    headers = {"X-Cache": status, **spending.headers, **served.headers()}
    if served.fell_back:
        logger.append_keys(**served.log_fields())
        control = replace(control, store=False)  # only what the requested model answered is stored
    return LiveStream(
        opened,
        found.key,
        control,
        spending,
        deadline,
        started,
        headers,
        upstream=served.target.upstream,
        model=served.target.model,
    )


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
        splitter = sse.EventSplitter()
        assembler = sse.Assembler()
        events: Any = zlib.compressobj(6)  # Mistral's events, compressed as they pass (None once given up)
        kept: list[bytes] = []  # ... the compressed output so far
        kept_bytes = 0
        done, readable = False, True
        ended = "cut"
        held: bytes | None = None  # Mistral's [DONE], sent once the answer is stored (below)
        try:
            for data in self._upstream.chunks():
                for event in splitter.feed(data):
                    payload = sse.event_data(event)
                    if payload == "[DONE]":
                        done = True
                    elif payload is not None:
                        readable = self._collect(payload, assembler) and readable
                    if payload == "[DONE]" and held is None:
                        held = event
                        self.outcome.events += 1
                    else:
                        self._forward(event, payload)
                    if events is not None:
                        if output := events.compress(event):  # zlib gives output a block at a time
                            kept.append(output)
                            kept_bytes += len(output)
                        if kept_bytes > MAX_STORED_BYTES or assembler.text_bytes > TEXT_LIMIT_BYTES:
                            events, kept = None, []  # let go: this answer cannot be stored
                            assembler.drop_text()
                            self.outcome.too_large_to_store = True
                if self._deadline.remaining_ms() <= 0:
                    self._stop_reason = self._stop_reason or "too_long"
                    self._upstream.close()
                    break
            if self._stop_reason is None:
                ended = "complete" if done and not splitter.pending.strip() else "cut"
        except Exception as error:  # the read failed: a timeout, a cut connection, or our own stop()
            ended = "idle_timeout" if _is_timeout(error) else "cut"
        if self._stop_reason is not None:
            ended = self._stop_reason
        if ended == "complete" and not (readable and assembler.finished):
            ended = "incomplete"  # [DONE] came, but a choice never finished: forwarded as is, never stored
        answer = assembler.answer() if ended == "complete" and readable else None
        failure = _failure(ended)
        if failure is not None and ended != "hung_up":
            self._put(sse.error_event(failure.body()))
        sent = Compressed(b"".join(kept) + events.flush()) if events is not None and answer is not None else None
        try:
            self._finish(ended, answer, sent, _usage(assembler.usage))
        except Exception as error:  # bookkeeping must never keep the caller's stream open
            observability.log_unexpected("stream bookkeeping failed", error)
        finally:
            # [DONE] last, after the store: a caller who asks again as soon as its stream ends gets the HIT.
            if held is not None:
                self._put(held)
            self._finished.set()
            self._put(_END)

    def _collect(self, payload: str, assembler: sse.Assembler) -> bool:
        try:
            chunk = json.loads(payload)
            if not isinstance(chunk, dict):
                return False
            assembler.feed(chunk)
        except (ValueError, TypeError, AttributeError, RecursionError):
            return False
        return True

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

    def _finish(self, ended: str, answer: dict[str, Any] | None, sent: bytes | None, usage: dict[str, int]) -> None:
        outcome = self.outcome
        outcome.ended = ended
        outcome.duration_ms = (time.perf_counter() - self._started) * 1000
        outcome.usage = usage
        if usage:
            self._spending.settle(usage["prompt_tokens"] + usage["completion_tokens"])
        else:
            # No usage from Mistral (cut, or the caller hung up): what it billed is unknown, so the budget keeps
            # the whole reservation, an upper bound of it. Never less: an estimate could let a caller overspend.
            self._spending.settle(self._spending.reserved_tokens)
        if ended == "complete" and answer is not None and quota.cut_at_cap(answer, self._spending.cap):
            service.account(b"", usage)  # forwarded whole, but maybe cut by the budget's cap: never stored
        elif ended == "complete" and answer is not None:
            body = json.dumps(answer, separators=(",", ":"), ensure_ascii=False).encode()
            outcome.stored = service.store(self._key, body, usage, self._control, events=sent)
            service.account(body, usage)
        elif ended == "complete":  # whole, but too large to store: it was not collected
            logger.warning("answer too large to cache", extra={"stream_events": outcome.events})
            observability.count(observability.CACHE_STORE_SKIPPED)
            service.account(b"", usage)
        else:
            observability.count(observability.STREAMS_ENDED_EARLY)
            if ended in ("cut", "idle_timeout"):
                kind = "idle_timeout" if ended == "idle_timeout" else "connection"
                upstream.stream_failed(current().upstream(self._upstream_name), kind, self._model)
            if usage:
                service.account(b"", usage)
        if outcome.first_token_ms is not None:
            observability.milliseconds(observability.TIME_TO_FIRST_TOKEN, outcome.first_token_ms)
        observability.milliseconds(observability.STREAM_DURATION, outcome.duration_ms)
        logger.append_keys(**outcome.log_fields())


def _usage(usage: Any) -> dict[str, int]:
    """Mistral's usage (in the last chunk), when it came: economics.token_usage's counts (cached tokens too)."""
    from mistral_gateway.platform.economics import token_usage

    return token_usage(usage)


def _is_timeout(error: Exception) -> bool:
    import httpx2

    return isinstance(error, httpx2.TimeoutException)


def _failure(ended: str) -> GatewayError | None:
    """The in-band error a stream that did not complete ends with."""
    if ended in ("complete", "incomplete", "hung_up"):
        return None
    if ended == "idle_timeout":
        seconds = settings().stream_idle_timeout_ms / 1000
        return UpstreamTimeout(f"Mistral sent nothing for {seconds:g} s; the stream was ended before it finished.")
    if ended == "too_long":
        return UpstreamTimeout("The stream reached the gateway's time limit before Mistral finished.")
    return UpstreamError("Mistral's stream was cut off before it finished; the answer is incomplete.")
