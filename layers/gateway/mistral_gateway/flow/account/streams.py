"""Streamed pass-through routes (conversations start/append/restart, agents completions with `stream: true`),
forwarded event by event on the streaming function as chat is.

The route's policies are passthrough.handle's, unchanged (owned.py's checks and records, references, budgets,
AccountRoutes); only the relay differs: `streamed_relay` opens Mistral's stream under the retry policy and
reads it up to its first event with data before anything goes to the caller. That first event is what the
policies read as the answer: a conversation's `conversation.response.started` names its `conversation_id`, so a
streamed start (or restart) is recorded for its caller before the first byte leaves, exactly as a buffered one
is, and if the ledger cannot record it the conversation is deleted upstream again, the stream closed and the
caller gets the same 503 as for a buffered create (owned.py). Only then does `RelayedStream` (live_stream.py's
LiveStream: its queue, keep-alives, caps, hang-ups) forward that first event and the rest as Mistral writes
them. Budgets are settled from the usage of the stream's last event (`conversation.response.done`, or an agents
completion's last chunk); a stream without usage keeps the whole reservation, as chat's does.

The buffered API function still answers these routes (sam local, or a client that reaches it): there
passthrough.handle relays the stream as one SSE body.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

from mistral_gateway.container import current, settings
from mistral_gateway.flow import checks, passthrough, relay
from mistral_gateway.flow.live_stream import LiveStream, is_timeout
from mistral_gateway.flow.relay import Forward, Relayed
from mistral_gateway.platform import economics
from mistral_gateway.platform.deadline import Deadline
from mistral_gateway.platform.errors import UpstreamError
from mistral_gateway.requests import prompt_cache
from mistral_gateway.requests.http import CacheControl
from mistral_gateway.upstream import mistral, retry, sse

# The routes Mistral streams (POST with `"stream": true`); any other body or path is relayed as before.
STREAMED_PATHS = re.compile(r"^(agents/completions|conversations(/[^/]+(/restart)?)?)$")
# The events after which a stream is whole: a conversation turn's last event, a completion's terminator.
_DONE_TYPES = ("conversation.response.done",)
_ERROR_TYPES = ("conversation.response.error",)


def streams(subpath: str, body: Any) -> bool:
    """Whether this POST is one Mistral answers with an event stream."""
    return isinstance(body, dict) and body.get("stream") is True and bool(STREAMED_PATHS.match(subpath.strip("/")))


@dataclass(frozen=True)
class LiveRelayed(Relayed):
    """Mistral's stream, opened and read up to its first event (`body`, what the route's policies read)."""

    head: tuple[bytes, ...] = ()
    opened: Any = None  # mistral.UpstreamStream
    chunks: Any = None  # its byte iterator, already started
    splitter: Any = None  # sse.EventSplitter, holding what came after the first event
    spending: Any = None  # quota.Spending, settled when the stream ends
    circuit: str | None = None  # whose circuit a broken stream counts on (relay.circuit_target)

    def abandon(self) -> None:
        """The policies refused the answer after it was opened (the ledger failed): stop Mistral's stream; the
        budget keeps the reservation (Mistral has started generating, what it billed is unknown)."""
        self.opened.close()
        self.spending.settle(self.spending.reserved_tokens)


def serve(request: Forward, started: float | None = None) -> Relayed | RelayedStream:
    """passthrough.handle with a streamed relay: a RelayedStream once the policies have passed the first event,
    or a plain Relayed (Mistral's 4xx, a JSON answer). Raises a GatewayError for anything before the first byte."""
    started = time.perf_counter() if started is None else started
    opened: list[LiveRelayed] = []

    def relaying(forward: Forward) -> Relayed:
        relayed = streamed_relay(forward)
        if isinstance(relayed, LiveRelayed):
            opened.append(relayed)
        return relayed

    try:
        relayed = passthrough.handle(request, relaying)
    except BaseException:
        for live in opened:
            live.abandon()
        raise
    if not isinstance(relayed, LiveRelayed):
        return relayed
    return RelayedStream(relayed, request.deadline, started)


def streamed_relay(request: Forward) -> Relayed:
    """passthrough.budgeted_relay for a stream: the same body policies and budget, Mistral's stream opened."""
    body = relay.edge_json(request)
    request = replace(request, body=prompt_cache.namespaced_body(request.subpath, request.body, request.caller))
    if "model" in body:
        checks.check_model(body)
    cappable = request.subpath.strip("/") in relay.CAPPABLE_ROUTES and bool(body)
    spending = current().budgets.spending(request.caller, body, cappable=cappable)
    try:
        if spending.cap is not None:
            request = replace(request, body=json.dumps({**body, "max_tokens": spending.cap}).encode())
        circuit = relay.circuit_target(request.body)
        opened = retry.call(
            lambda timeout_ms: _open(request, timeout_ms),
            request.deadline,
            via=current().upstream(retry.MISTRAL),
            operation="passthrough.stream",
            model=circuit,
            generates=True,
        )
    except BaseException:
        spending.release()
        raise
    if isinstance(opened, Relayed):  # Mistral's 4xx, or a JSON answer: as the buffered relay gives it
        spending.release()
        return replace(opened, headers={**opened.headers, **spending.headers})
    try:
        chunks, splitter, head = _first_event(opened)
    except BaseException:
        opened.close()
        spending.settle(spending.reserved_tokens)
        raise
    return LiveRelayed(
        200,
        "text/event-stream",
        b"".join(head),
        dict(spending.headers),
        head=tuple(head),
        opened=opened,
        chunks=chunks,
        splitter=splitter,
        spending=spending,
        circuit=circuit,
    )


def _open(request: Forward, timeout_ms: int) -> mistral.UpstreamStream | Relayed:
    """Mistral's stream (status 200, an event stream), or its 4xx / JSON answer read whole."""
    url = relay.upstream_url(request.subpath, request.query)
    headers = {name: request.headers[name] for name in relay.FORWARDED_HEADERS if request.headers.get(name)}
    headers["accept"] = "text/event-stream"

    headers["authorization"] = f"Bearer {current().keys.mistral()}"
    client = relay.shared_client()
    idle_ms = settings().stream_idle_timeout_ms
    built = client.build_request(
        "POST", url, content=request.body, headers=headers, timeout=min(timeout_ms, idle_ms) / 1000
    )
    response = client.send(built, stream=True)
    status = response.status_code
    if status in retry.RETRYABLE_STATUSES or status == 401 or not (200 <= status < 300 or 400 <= status < 500):
        content = response.read()
        response.close()
        raise retry.StatusFailure(status, response.headers, content)
    content_type = response.headers.get("content-type", "application/octet-stream")
    if status >= 400 or "text/event-stream" not in content_type.lower():
        content = response.read()
        response.close()
        relayed = Relayed(status, content_type, content)
        if status < 300:
            relay.readable(relayed)
        return relayed
    return mistral.UpstreamStream(response)


def _first_event(opened: mistral.UpstreamStream) -> tuple[Iterator[bytes], sse.EventSplitter, list[bytes]]:
    """Read until Mistral's first event with data (comments before it are kept and forwarded too)."""
    chunks = iter(opened.chunks())
    splitter = sse.EventSplitter()
    head: list[bytes] = []
    try:
        for data in chunks:
            events = list(splitter.feed(data))  # feed() is a generator
            head.extend(events)
            if any(sse.event_data(event) is not None for event in events):
                return chunks, splitter, head
    except Exception as error:
        if is_timeout(error):
            raise UpstreamError("Mistral's stream sent nothing before its idle timeout.") from None
        raise UpstreamError("Mistral's stream was cut off before its first event.") from None
    raise UpstreamError("Mistral's stream ended before its first event.")


class RelayedStream(LiveStream):
    """A streamed pass-through answer in flight: the first event (already read and checked), then Mistral's
    events one by one; the budget settled and the turn metered from the last event's usage."""

    def __init__(self, live: LiveRelayed, deadline: Deadline, started: float) -> None:
        self._live = live  # before the reader thread starts (LiveStream's constructor starts it)
        self._model: str | None = None
        no_store = CacheControl(read=False, store=False)
        super().__init__(live.opened, "", no_store, live.spending, deadline, started, dict(live.headers))

    def _pump(self) -> str:
        self._state = state = _Followed()
        for event in self._live.head:
            self._pass(event, state)
        splitter = self._live.splitter
        ended = self._follow(self._live.chunks, splitter, lambda event: self._pass(event, state))
        if ended is None:
            if state.failed:
                ended = "incomplete"  # Mistral's own error event, forwarded as it sent it
            else:
                ended = "complete" if state.done and not splitter.pending.strip() else "cut"
        return ended

    def _pass(self, event: bytes, state: _Followed) -> None:
        payload = sse.event_data(event)
        if payload is not None:
            state.follow(payload)
        self._forward(event, payload)

    def _settle(self, ended: str) -> None:
        state = self._state
        usage = economics.token_usage(state.usage)
        self._close_books(ended, usage, early=ended not in ("complete", "incomplete"), circuit=self._live.circuit)
        self._meter(usage, state.model)
        self._report()


class _Followed:
    """What the reader follows in the events it forwards: the end, an error, the model, the last usage."""

    def __init__(self) -> None:
        self.done = False
        self.failed = False
        self.model: str | None = None
        self.usage: Any = None

    def follow(self, payload: str) -> None:
        if payload == "[DONE]":
            self.done = True
            return
        try:
            data = json.loads(payload)
        except (ValueError, RecursionError):
            return
        if not isinstance(data, dict):
            return
        kind = data.get("type")
        if kind in _DONE_TYPES:
            self.done = True
        if kind in _ERROR_TYPES or data.get("object") == "error":
            self.failed = True
        if isinstance(data.get("model"), str):
            self.model = data["model"]
        if isinstance(data.get("usage"), dict):
            self.usage = data["usage"]
