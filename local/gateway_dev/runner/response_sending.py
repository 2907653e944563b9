"""When a buffered function's post-response work starts under the local HTTP gateway: once its response is sent.

LocalFunction.invoke returns the handler's response and leaves the work the invocation collected
(mistral_gateway.platform.after_response) for after it; the ASGI gateway (asgi.py) sends the response inside
`sending_response()`, and the work starts when that block ends.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Callable, Iterator


class ResponseSending:
    """Work to start once a response has reached the caller (`after_sent`), for the local HTTP gateway: in
    Lambda the runtime has posted the response before the post-response extension runs (the runtime client
    holds the GIL while it posts); started earlier, the store's thread would compete with the response's way
    out for this process's GIL. Work added after `sent()` starts at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: list[Callable[[], None]] | None = []

    def after_sent(self, start: Callable[[], None]) -> None:
        with self._lock:
            if self._waiting is not None:
                self._waiting.append(start)
                return
        start()

    def sent(self) -> None:
        with self._lock:
            waiting, self._waiting = self._waiting or [], None
        for start in waiting:
            start()


# The sending of the response being served in this context (None: `invoke`'s caller has it when it returns).
_SENDING: contextvars.ContextVar[ResponseSending | None] = contextvars.ContextVar("local_sending", default=None)


def after_sent(start: Callable[[], None]) -> None:
    """Call `start` once the response being served in this context is sent (at once when none is)."""
    sending = _SENDING.get()
    if sending is None:
        start()  # `invoke`'s caller has the response now
    else:
        sending.after_sent(start)


@contextlib.contextmanager
def sending_response() -> Iterator[None]:
    """Around sending a buffered function's response: the post-response work of its invocation starts when
    the block ends (the response sent, or the caller gone), never before."""
    sending = ResponseSending()
    token = _SENDING.set(sending)
    try:
        yield
    finally:
        _SENDING.reset(token)
        sending.sent()
