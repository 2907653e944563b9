"""The gateway under the local runner and a peer proxy, same emulator, same client, request by request in turn:
each figure as a ratio of the gateway's to the peer's (below 1: the gateway is faster or smaller).

What is compared (HTTP through each, a fresh prompt per miss, times in ms):
- hit: a stored request asked again;
- miss overhead: a new prompt through the proxy minus the same-sized one straight to the emulator, pair by pair;
- TTFT added: a streamed miss's first event through the proxy minus straight from the emulator;
- cached replay: a stored streamed answer's first event;
- 50 concurrent misses and 50 concurrent streams: the wall time until the last one is answered."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from gateway_dev.bench.prompt_size import posted
from gateway_dev.bench.settings import CHAT_PATH, POST_RESPONSE_PAUSE_S
from gateway_dev.bench.stack import chat_body
from gateway_dev.bench.stats import Stats, stats
from gateway_dev.bench.streaming.client import caller_headers, http_client, read_stream, stream_body

CONCURRENT = 50
X = "\u00d7"  # the multiplication sign of ratios


@dataclass(frozen=True)
class Side:
    """One proxy's URL and the key its client sends; `cache_header` when it says HIT / MISS in X-Cache."""

    name: str
    url: str
    key: str | None
    cache_header: bool = False


@dataclass(frozen=True)
class Pair:
    figure: str
    gateway: Stats
    peer: Stats

    @property
    def ratio(self) -> float:
        return self.gateway.median / self.peer.median if self.peer.median else float("inf")

    @property
    def p95_ratio(self) -> float:
        return self.gateway.p95 / self.peer.p95 if self.peer.p95 else float("inf")


def compare(gateway: Side, peer: Side, emulator: Any, nonce: str, iterations: int, warmup: int) -> list[Pair]:
    """Every figure for both sides, alternating request by request."""
    client = http_client(keep_alive=True)
    direct = Side("emulator", emulator.url, emulator.api_key)
    samples: dict[str, dict[str, list[float]]] = {}

    def sample(figure: str, side: Side, value: float, counted: bool) -> None:
        if counted:
            samples.setdefault(figure, {}).setdefault(side.name, []).append(value)

    try:
        for side in (gateway, peer):  # each side stores its hit and its streamed answer once
            posted(
                client, side.url + CHAT_PATH, chat_body(f"side hit {nonce}"), caller_headers(side.key), expected=None
            )
            read_stream(client, side.url + CHAT_PATH, stream_body(f"side replay {nonce}"), caller_headers(side.key))
        for i in range(-warmup, iterations):
            counted = i >= 0
            for side in (gateway, peer):
                headers = caller_headers(side.key)
                hit = posted(
                    client, side.url + CHAT_PATH, chat_body(f"side hit {nonce}"), headers,
                    expected="HIT" if side.cache_header else None,
                )  # fmt: skip
                sample("hit", side, hit, counted)
                text = f"side miss {side.name} {nonce} {i}"
                through = posted(client, side.url + CHAT_PATH, chat_body(text), headers, expected=None)
                time.sleep(POST_RESPONSE_PAUSE_S)  # its store or cache write lands before the reference
                straight = posted(
                    client, direct.url + CHAT_PATH, chat_body(text), caller_headers(direct.key), expected=None
                )
                sample("miss overhead", side, through - straight, counted)
                streamed = read_stream(client, side.url + CHAT_PATH, stream_body(text + " s"), headers)
                floor = read_stream(
                    client, direct.url + CHAT_PATH, stream_body(text + " s"), caller_headers(direct.key)
                )
                sample("TTFT added", side, streamed.first_ms - floor.first_ms, counted)
                replay = read_stream(client, side.url + CHAT_PATH, stream_body(f"side replay {nonce}"), headers)
                sample("cached replay, first event", side, replay.first_ms, counted)
        for round_ in range(max(1, iterations // 10)):
            for side in (gateway, peer):
                label = f"{side.name} {nonce} {round_}"
                sample(f"{CONCURRENT} concurrent misses", side, together(side, label, streamed=False), True)
                sample(f"{CONCURRENT} concurrent streams", side, together(side, label, streamed=True), True)
    finally:
        client.close()
    return [
        Pair(figure, stats(by_side[gateway.name]), stats(by_side[peer.name])) for figure, by_side in samples.items()
    ]


def together(side: Side, label: str, *, streamed: bool) -> float:
    """ms until the last of CONCURRENT different misses (or streams) sent at once is answered whole."""
    headers = caller_headers(side.key)

    def one(index: int) -> None:
        with http_client() as client:
            text = f"together {'stream' if streamed else 'plain'} {label} {index}"
            if streamed:
                answer = read_stream(client, side.url + CHAT_PATH, stream_body(text), headers)
                if answer.status != 200 or not answer.done:
                    raise RuntimeError(f"{side.name}: concurrent stream {index} answered {answer.status}")
            else:
                posted(client, side.url + CHAT_PATH, chat_body(text), headers, expected=None)

    return timed_all(one, CONCURRENT)


def timed_all(call: Callable[[int], None], count: int) -> float:
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=count) as pool:
        list(pool.map(call, range(count)))
    return (time.perf_counter() - started) * 1000


@dataclass(frozen=True)
class PeerFigures:
    """A peer measured side by side: the request figures, and its cold start and memory beside the gateway's."""

    name: str
    version: str
    pairs: list[Pair]
    peer_cold_ms: float  # spawn to its first answer (a hit in its fresh in-memory cache is impossible: a miss)
    gateway_cold_ms: float  # figure 1, whole process: a fresh Lambda container's import and first answer
    peer_rss_mb: float  # the proxy's peak resident memory over its part of the run
    gateway_rss_mb: float  # figure 5: the gateway's peak after 1,000 mixed requests


def peer_rows(figures: PeerFigures) -> list[list[str]]:
    """The side-by-side table's rows: figure, gateway, peer, ratio (median; p95 where it is a sample)."""
    from gateway_dev.bench.stats import ms, spread

    rows = [
        [pair.figure, spread(pair.gateway), spread(pair.peer), f"{pair.ratio:.2f}{X} (p95 {pair.p95_ratio:.2f}{X})"]
        for pair in figures.pairs
    ]
    rows.append(
        [
            "cold start (spawn to first answer)",
            ms(figures.gateway_cold_ms),
            ms(figures.peer_cold_ms),
            f"{figures.gateway_cold_ms / figures.peer_cold_ms:.2f}{X}",
        ]
    )
    rows.append(
        [
            "peak RSS",
            f"{figures.gateway_rss_mb:.1f} MB",
            f"{figures.peer_rss_mb:.1f} MB",
            f"{figures.gateway_rss_mb / figures.peer_rss_mb:.2f}{X}",
        ]
    )
    return rows
