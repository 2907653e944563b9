"""The one writer of the emulator's streams (chat, FIM, agents, responses, conversations): events paced at
the emulator's rate, and a scripted Fault played at the third event (cut, stall, gate, error)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

from werkzeug.wrappers import Response

from gateway_dev.emulator.wire import Fault, drop

DONE = b"data: [DONE]\n\n"


def event(data: Any, name: str | None = None) -> bytes:
    """One SSE event: `data: <json>`, named (`event: <name>`) when the wire format names its events."""
    head = f"event: {name}\n" if name else ""
    return f"{head}data: {json.dumps(data)}\n\n".encode()


def stream(
    events: list[bytes],
    fault: Fault | None,
    delay: float,
    error_event: bytes,
    done: bytes = b"",
    environ: dict[str, Any] | None = None,
) -> Response:
    """A 200 text/event-stream of `events`, `delay` seconds apart, then `done`. A fault acts before the third
    event: `stream_cut` ends the stream there (dropping the connection when `environ` is given), `stall`
    pauses, `gate` waits for the test, `stream_error` sends `error_event` and ends."""
    return Response(
        _paced(events, fault, delay, error_event, done, environ), status=200, content_type="text/event-stream"
    )


def _paced(
    events: list[bytes],
    fault: Fault | None,
    delay: float,
    error_event: bytes,
    done: bytes,
    environ: dict[str, Any] | None,
) -> Iterator[bytes]:
    for index, data in enumerate(events):
        if fault and index == 2:
            if fault.stream_cut:
                if environ is not None:
                    drop(environ)
                return
            if fault.stall:
                time.sleep(fault.stall)
            if fault.gate is not None:
                fault.gate.wait(30)
            if fault.stream_error:
                yield error_event
                return
        if delay and index:
            time.sleep(delay)
        yield data
    if done:
        yield done
