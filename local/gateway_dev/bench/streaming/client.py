"""Reading a streamed answer as a client does, stamping each `data:` event as it arrives."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from gateway_dev.bench.stack import chat_body


@dataclass(frozen=True)
class Streamed:
    """One streamed answer as a client saw it; times are perf_counter() seconds."""

    sent: float
    first: float | None  # the first `data:` event
    second: float | None  # the second (the first that carries a token)
    end: float
    events: int  # `data:` events, [DONE] included
    done: bool  # ended with `data: [DONE]`
    status: int
    cache: str | None
    body: bytes

    @property
    def first_ms(self) -> float:
        if self.first is None:
            raise RuntimeError(f"no event in the answer ({self.status}): {self.body[:200]!r}")
        return (self.first - self.sent) * 1000

    @property
    def second_ms(self) -> float:
        return ((self.second or self.end) - self.sent) * 1000

    @property
    def total_ms(self) -> float:
        return (self.end - self.sent) * 1000


def http_client(*, keep_alive: bool = False) -> Any:
    """A fresh connection per request for every client (the floor hangs up early: no side keeps one warm).
    `keep_alive`: one connection per server, reused, as SDK clients do."""
    import httpx2

    if keep_alive:
        return httpx2.Client(timeout=30.0, trust_env=False)
    return httpx2.Client(timeout=30.0, trust_env=False, limits=httpx2.Limits(max_keepalive_connections=0))


def read_stream(
    client: Any, url: str, body: dict[str, Any], headers: dict[str, str], *, whole: bool = True
) -> Streamed:
    """POST `body` and read the SSE answer, stamping each `data:` event as it arrives. `whole=False` hangs up
    after the second event (the floor: what follows does not change its first-event time)."""
    started = time.perf_counter()
    stamps: list[float] = []
    done = False
    kept = bytearray()
    pending = b""
    with client.stream("POST", url, json=body, headers=headers) as response:
        for chunk in response.iter_raw():
            now = time.perf_counter()
            kept += chunk
            *complete, pending = (pending + chunk).replace(b"\r\n", b"\n").split(b"\n\n")
            for event in complete:
                data = [line for line in event.split(b"\n") if line.startswith(b"data:")]
                if data:
                    stamps.append(now)
                    done = data[-1].strip() == b"data: [DONE]"
            if not whole and len(stamps) >= 2:
                break
        end = time.perf_counter()
        status, cache = response.status_code, response.headers.get("x-cache")
    first = stamps[0] if stamps else None
    second = stamps[1] if len(stamps) > 1 else None
    return Streamed(started, first, second, end, len(stamps), done, status, cache, bytes(kept))


def stream_body(text: str) -> dict[str, Any]:
    return chat_body(text, stream=True)


def caller_headers(caller_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {caller_key}"} if caller_key else {}


@contextlib.contextmanager
def paced(emulator: Any, events: int, gap_s: float) -> Iterator[None]:
    """The emulator writes streams of `events` events (role, words, finish), `gap_s` apart, then [DONE]."""
    previous = emulator.stream_delay, emulator.answer_words
    emulator.stream_delay, emulator.answer_words = gap_s, max(1, events - 2)
    try:
        yield
    finally:
        emulator.stream_delay, emulator.answer_words = previous
