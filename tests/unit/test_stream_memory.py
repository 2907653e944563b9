"""A live stream's memory is bounded by design: a caller who stops reading stops the reader after a bounded
queue, and an answer that outgrows what the cache can store stops being collected (forwarded whole, not
stored). Driven against a small fake of Mistral's opened stream; nothing here is timed."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from mistral_gateway.container import current
from mistral_gateway.flow import live_stream, streaming
from mistral_gateway.platform.deadline import Deadline
from mistral_gateway.policies import quota
from mistral_gateway.requests.http import CacheControl


def event(index: int, text: str = " word", finish: str | None = None, usage: bool = False) -> bytes:
    chunk: dict[str, Any] = {
        "id": "cmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": {"content": f"{text}{index}"}, "finish_reason": finish}],
    }
    if usage:
        chunk["usage"] = {"prompt_tokens": 3, "completion_tokens": index, "total_tokens": index + 3}
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


class FakeOpened:
    """Mistral's opened stream: `count` events, then a finish with usage and [DONE]. Counts what was pulled."""

    def __init__(self, count: int, text: str = " word") -> None:
        self.count, self.text = count, text
        self.pulled = 0
        self.closed = threading.Event()

    def chunks(self) -> Iterator[bytes]:
        for index in range(self.count):
            if self.closed.is_set():
                raise ConnectionError("closed by the gateway")
            self.pulled += 1
            yield event(index, self.text)
        yield event(self.count, finish="stop", usage=True)
        yield b"data: [DONE]\n\n"

    def close(self) -> None:
        self.closed.set()


def live(opened: FakeOpened) -> streaming.ChatStream:
    spending = quota.Spending(current().budgets, None)
    return streaming.ChatStream(
        opened,  # type: ignore[arg-type]
        "key",
        CacheControl(read=False, store=False),  # nothing reaches DynamoDB
        spending,
        Deadline.start(60_000),
        time.perf_counter(),
        {},
    )


def settled(read: Any, timeout: float = 10.0) -> int:
    """`read()` once it stopped changing (the reader has blocked or ended)."""
    last, deadline = -1, time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = read()
        if value == last:
            return int(value)
        last = value
        time.sleep(0.2)
    return int(read())


def test_a_caller_who_stops_reading_holds_the_reader_to_a_bounded_queue() -> None:
    # Given a long answer from Mistral
    opened = FakeOpened(50_000)
    stream = live(opened)
    # When the caller reads three events and then stops reading (without hanging up)
    events = stream.events()
    first = [next(events) for _ in range(3)]
    pulled = settled(lambda: opened.pulled)
    # Then the reader stops pulling from Mistral once the caller's queue is full: no more than the queue holds
    assert first[0].startswith(b"data: ")
    assert pulled <= 3 + live_stream.QUEUE_EVENTS + 2, pulled
    # And when the caller hangs up, the reader lets go and ends without pulling the rest
    stream.stop()
    outcome = stream.wait(10)
    assert outcome.ended == "hung_up" and opened.pulled < 50_000


def test_an_answer_too_large_to_store_is_forwarded_whole_and_not_collected(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a cache that can store less text than this answer holds
    monkeypatch.setattr(streaming, "TEXT_LIMIT_BYTES", 2_000)
    opened = FakeOpened(2_000)
    stream = live(opened)
    # When the caller reads the whole stream
    received = b"".join(stream.events())
    outcome = stream.wait(10)
    # Then every event reached it, the stream completed, and the answer was marked unstorable, not collected
    assert received.count(b"data: ") == 2_002 and received.endswith(b"data: [DONE]\n\n")
    assert outcome.ended == "complete" and outcome.too_large_to_store and not outcome.stored
    assert outcome.usage == {"prompt_tokens": 3, "completion_tokens": 2_000}
    assert outcome.log_fields()["cache_skipped"] == "too_large"


def test_events_past_the_cache_item_size_are_let_go(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given an item size smaller than this stream's events, even compressed
    monkeypatch.setattr(streaming, "MAX_STORED_BYTES", 1_000)
    opened = FakeOpened(20_000, text=" varied text ")
    stream = live(opened)
    b"".join(stream.events())
    outcome = stream.wait(10)
    assert outcome.ended == "complete" and outcome.too_large_to_store


def test_an_answer_that_fits_is_collected() -> None:
    opened = FakeOpened(50)
    stream = live(opened)
    b"".join(stream.events())
    outcome = stream.wait(10)
    assert outcome.ended == "complete" and not outcome.too_large_to_store
    assert "cache_skipped" not in outcome.log_fields()
