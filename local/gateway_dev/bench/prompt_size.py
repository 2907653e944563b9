"""Figure 13: what the gateway adds to a miss and to a streamed miss's first event as the prompt grows (1 kB, 10 kB,
100 kB): hashing, the canonical form, validation and the budget reservation all read the whole body.

Each request through the local HTTP gateway (`make serve`'s) is followed by the same-sized request straight to the
emulator; the figure is the difference, pair by pair, so the emulator's own time (which also grows with the body)
is taken out."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from gateway_dev.bench.settings import CHAT_PATH
from gateway_dev.bench.stack import chat_body
from gateway_dev.bench.stats import Stats, stats
from gateway_dev.bench.streaming.client import caller_headers, http_client, read_stream, stream_body

PROMPT_BYTES = (1_000, 10_000, 100_000)
FILLER = "the quick brown fox jumps over the lazy dog "


@dataclass(frozen=True)
class SizedOverhead:
    prompt_bytes: int
    miss: Stats  # ms the gateway adds to a plain miss (its time minus the emulator's, pair by pair)
    first_event: Stats  # ms it adds to a streamed miss's first event, the same way


def prompt_of(size: int, label: str) -> str:
    """An ASCII prompt of exactly `size` bytes that no other request has sent (it starts with `label`)."""
    head = f"{label} "
    if len(head) >= size:
        raise ValueError(f"a {size}-byte prompt cannot start with {label!r}")
    body = FILLER * (size // len(FILLER) + 1)
    return (head + body)[:size]


def prompt_sizes(
    gateway_url: str,
    caller_key: str | None,
    emulator: Any,
    nonce: str,
    iterations: int,
    warmup: int,
    sizes: tuple[int, ...] = PROMPT_BYTES,
) -> list[SizedOverhead]:
    """For each size, `iterations` plain misses and streamed misses through the gateway (served in this process),
    each followed by the same request straight to the emulator, after `warmup` uncounted rounds."""
    from mistral_gateway.platform import after_response

    client = http_client(keep_alive=True)
    gateway_headers, direct_headers = caller_headers(caller_key), caller_headers(emulator.api_key)
    results = []
    try:
        for size in sizes:
            miss: list[float] = []
            first: list[float] = []
            for i in range(-warmup, iterations):
                text = prompt_of(size, f"prompt size {size} {nonce} {i}")
                through = posted(client, gateway_url + CHAT_PATH, chat_body(text), gateway_headers, expected="MISS")
                after_response.settle()  # its store (the gateway runs in this process) lands before the reference
                direct = posted(client, emulator.url + CHAT_PATH, chat_body(text), direct_headers, expected=None)
                streamed = read_stream(client, gateway_url + CHAT_PATH, stream_body(text + "."), gateway_headers)
                if streamed.status != 200 or streamed.cache != "MISS":
                    raise RuntimeError(f"streamed {size}-byte prompt: {streamed.status} {streamed.cache}")
                floor = read_stream(client, emulator.url + CHAT_PATH, stream_body(text + "."), direct_headers)
                if i >= 0:
                    miss.append(through - direct)
                    first.append(streamed.first_ms - floor.first_ms)
            results.append(SizedOverhead(size, stats(miss), stats(first)))
    finally:
        client.close()
    return results


def posted(client: Any, url: str, body: dict[str, Any], headers: dict[str, str], *, expected: str | None) -> float:
    """ms for one whole JSON answer; raises unless it is a 200 (and, through the gateway, the expected X-Cache)."""
    started = time.perf_counter()
    response = client.post(url, json=body, headers=headers)
    response.read()
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code != 200 or (expected is not None and response.headers.get("x-cache") != expected):
        raise RuntimeError(f"{url}: {response.status_code} {response.headers.get('x-cache')} {response.text[:200]}")
    return elapsed
