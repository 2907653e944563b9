"""A streamed `/v1/responses` request (`stream: true`), forwarded event by event as Mistral writes it.

`ResponseStream` is the streaming function's LiveStream reading Responses events; the completed response is
stored at the end, from its `response.completed` (or `response.incomplete`) event (responses_stored.Plan).
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from mistral_gateway.flow import answers, responses_stored
from mistral_gateway.flow.live_stream import LiveStream
from mistral_gateway.platform import economics
from mistral_gateway.platform.deadline import Deadline
from mistral_gateway.policies import quota
from mistral_gateway.requests.http import CacheControl
from mistral_gateway.upstream import mistral, sse

# The events that end a Responses stream, with the finished response in their `response` field.
TERMINAL_EVENTS = ("response.completed", "response.incomplete", "response.failed")


STORED_STATUSES = ("response.completed", "response.incomplete")


class ResponseStream(LiveStream):
    """A streamed response in flight: Mistral's events forwarded one by one (LiveStream's queue, keep-alives,
    stop and wait), the finished response taken from the terminal event, stored, settled and counted."""

    def __init__(
        self,
        plan: responses_stored.Plan,
        opened: mistral.UpstreamStream,
        spending: quota.Spending,
        deadline: Deadline,
        started: float,
        headers: dict[str, str],
        control: CacheControl,
    ) -> None:
        self._plan = plan  # before the reader thread starts (LiveStream's constructor starts it)
        super().__init__(opened, "", replace(control, store=False), spending, deadline, started, headers)

    def _pump(self) -> str:
        splitter = sse.EventSplitter()
        self._final: tuple[str, dict[str, Any]] | None = None

        def on_event(event: bytes) -> None:
            payload = sse.event_data(event)
            if payload is not None and '"response.' in payload:
                self._final = terminal(payload) or self._final
            self._forward(event, payload)

        ended = self._follow(self._upstream.chunks(), splitter, on_event)
        if ended is None:
            ended = "complete" if self._final is not None and not splitter.pending.strip() else "cut"
        return ended

    def _settle(self, ended: str) -> None:
        final = self._final
        response = final[1] if final is not None else {}
        usage = economics.token_usage(response.get("usage"))
        self._close_books(ended, usage, early=ended != "complete")
        if ended == "complete" and final is not None and final[0] in STORED_STATUSES:
            self.outcome.stored = self._plan.keep({**response, "previous_response_id": self._plan.previous_id})
        self._meter(usage, response.get("model") or self._plan.model)
        self._report()


def terminal(payload: str) -> tuple[str, dict[str, Any]] | None:
    """(event type, finished response) when `payload` is a Responses stream's last event, else None."""
    try:
        data = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("type") not in TERMINAL_EVENTS:
        return None
    response = data.get("response")
    return (str(data["type"]), response) if isinstance(response, dict) else None


def buffered(outcome: answers.Answer | ResponseStream) -> answers.Answer:
    """For the buffered API function (sam local): a stream delivered as one SSE body once it has ended."""
    if isinstance(outcome, answers.Answer):
        return outcome
    events = b"".join(event for event in outcome.events() if event != sse.KEEPALIVE)
    outcome.wait(10.0)
    return answers.Answer(
        body=events.decode(), cache_status="BYPASS", content_type=answers.EVENT_STREAM, headers=outcome.headers
    )
