"""Figure 9: time to first event of a warm streamed miss through the local HTTP gateway, minus the emulator's own,
while the emulator streams a paced answer; and where the time goes, from perf_counter marks around the steps of
`streaming.completion_stream`."""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from gateway_dev.bench.settings import CHAT_PATH
from gateway_dev.bench.stats import Stats, stats
from gateway_dev.bench.streaming.client import caller_headers, http_client, paced, read_stream, stream_body

# The steps of a streamed miss, in order; their medians add up to the first-event time through the gateway.
PHASES = (
    ("http_in", "HTTP in: uvicorn, LocalGateway (key check, adapter headers), Starlette, body, worker thread"),
    ("lookup", "cache lookup (`answers.look_up`: key + GetItem)"),
    ("validate", "validation (`checks.validate`, pydantic)"),
    ("budget", "budget reservation (`Budgets.spending`)"),
    ("other", "the rest of `completion_stream` before Mistral (dialect, model check, canonical form, metrics)"),
    ("open", "Mistral's stream opened (`upstream.open_stream`: SDK request to the 200)"),
    ("first_read", "first event read from Mistral's body by the reader thread"),
    ("out", "first event to the caller (queue, worker thread hop, event loop, uvicorn, loopback, client)"),
)


class Marks:
    """perf_counter() stamps of one request's steps, set by wrappers around the gateway's functions."""

    def __init__(self) -> None:
        self.current: dict[str, float] = {}

    def begin(self) -> dict[str, float]:
        self.current = {}
        return self.current

    def first(self, name: str) -> None:
        self.current.setdefault(name, time.perf_counter())


@contextlib.contextmanager
def phase_marks() -> Iterator[Marks]:
    """Wraps the steps of `streaming.completion_stream` (module attributes, looked up at each call) with
    perf_counter() stamps: a few microseconds per request. Everything is put back afterwards."""
    from mistral_gateway.flow import answers, checks, live_stream, streaming
    from mistral_gateway.policies import quota
    from mistral_gateway.upstream import mistral as upstream

    marks = Marks()
    patched: list[tuple[Any, str, Any]] = []

    def wrap(owner: Any, name: str, label: str) -> None:
        original = getattr(owner, name)

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            marks.first(f"{label}_start")
            try:
                return original(*args, **kwargs)
            finally:
                marks.first(f"{label}_end")

        patched.append((owner, name, original))
        setattr(owner, name, timed)

    wrap(streaming, "completion_stream", "stream")
    wrap(answers, "look_up", "lookup")
    wrap(checks, "validate", "validate")
    wrap(quota.Budgets, "spending", "budget")
    wrap(upstream, "open_stream", "open")
    original_forward = live_stream.LiveStream._forward

    def forward(self: Any, event: bytes, payload: str | None) -> None:
        marks.first("first_forward")
        original_forward(self, event, payload)

    patched.append((live_stream.LiveStream, "_forward", original_forward))
    live_stream.LiveStream._forward = forward  # type: ignore[method-assign]
    try:
        yield marks
    finally:
        for owner, name, original in reversed(patched):
            setattr(owner, name, original)


def phases_of(marks: dict[str, float], sent: float, first: float) -> dict[str, float]:
    """One request's steps in ms; they add up to `first - sent`."""
    took = {name: marks[f"{name}_end"] - marks[f"{name}_start"] for name in ("lookup", "validate", "budget")}
    before_open = marks["open_start"] - marks["stream_start"]
    seconds = {
        "http_in": marks["stream_start"] - sent,
        **took,
        "other": before_open - sum(took.values()),
        "open": marks["open_end"] - marks["open_start"],
        "first_read": marks["first_forward"] - marks["open_end"],
        "out": first - marks["first_forward"],
    }
    return {name: value * 1000 for name, value in seconds.items()}


@dataclass(frozen=True)
class StreamedMiss:
    gateway_first: Stats  # request sent -> first `data:` event, through the gateway
    floor_first: Stats  # the same, straight from the emulator
    overhead: Stats  # gateway_first - floor_first, pair by pair
    gateway_second: Stats  # -> the second event (the first carrying a token)
    floor_second: Stats
    gateway_total: Stats  # -> the end of the answer, through the gateway
    events: int  # data events the gateway forwarded per answer ([DONE] included)
    phases: dict[str, Stats]  # where the gateway's first-event time goes
    log_ttft: Stats  # what the "request served" line says (completion_stream entered -> first event forwarded)
    answer_s: float  # the emulator's own writing time for one answer: (events - 1) * gap


def streamed_miss(
    gateway_url: str,
    caller_key: str | None,
    emulator: Any,
    nonce: str,
    iterations: int,
    *,
    events: int,
    gap_s: float,
    warmup: int,
) -> StreamedMiss:
    """Warm streamed misses through the gateway, each followed by the same stream straight from the emulator
    (the floor), while the emulator writes `events` events `gap_s` apart."""
    client = http_client()
    direct_headers = caller_headers(emulator.api_key)
    samples: dict[str, list[float]] = {}
    phase_samples: dict[str, list[float]] = {name: [] for name, _ in PHASES}
    forwarded: set[int] = set()
    try:
        with paced(emulator, events, gap_s), phase_marks() as marks:
            for i in range(-warmup, iterations):
                current = marks.begin()
                body = stream_body(f"streamed miss {nonce} {i}")
                through = read_stream(client, gateway_url + CHAT_PATH, body, caller_headers(caller_key))
                if through.status != 200 or through.cache != "MISS" or not through.done:
                    raise RuntimeError(f"streamed miss: {through.status} {through.cache}: {through.body[-300:]!r}")
                floor = read_stream(
                    client, emulator.url + CHAT_PATH, stream_body(f"streamed floor {nonce} {i}"), direct_headers,
                    whole=False,
                )  # fmt: skip
                if i < 0:
                    continue
                assert through.first is not None
                values = {
                    "gateway_first": through.first_ms,
                    "floor_first": floor.first_ms,
                    "overhead": through.first_ms - floor.first_ms,
                    "gateway_second": through.second_ms,
                    "floor_second": floor.second_ms,
                    "gateway_total": through.total_ms,
                    "log_ttft": (current["first_forward"] - current["stream_start"]) * 1000,
                }
                for name, value in values.items():
                    samples.setdefault(name, []).append(value)
                for name, value in phases_of(current, through.sent, through.first).items():
                    phase_samples[name].append(value)
                forwarded.add(through.events)
    finally:
        client.close()
    if len(forwarded) != 1:
        raise RuntimeError(f"the gateway forwarded different numbers of events: {sorted(forwarded)}")
    return StreamedMiss(
        **{name: stats(values) for name, values in samples.items()},
        events=forwarded.pop(),
        phases={name: stats(values) for name, values in phase_samples.items()},
        answer_s=(events - 1) * gap_s,
    )
