"""Figure 10: the first event of a cached stream replayed, against a bare Starlette app on the same kind of uvicorn
server doing one GetItem of the same item and answering the same bytes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway_dev.bench.settings import CHAT_PATH
from gateway_dev.bench.stack import cache_keys
from gateway_dev.bench.stats import Stats, stats
from gateway_dev.bench.streaming.client import Streamed, caller_headers, http_client, paced, read_stream, stream_body


@dataclass(frozen=True)
class Replay:
    hit_first: Stats
    hit_total: Stats
    floor_first: Stats
    hit_first_kept: Stats  # the same two, over one kept-alive connection per server (as an SDK client does)
    floor_first_kept: Stats
    events: int  # data events in the replay
    original_events: int  # data events of the miss that stored it
    bytes_equal: bool  # the replay is the original stream, byte for byte


def stream_replay(
    gateway_url: str,
    caller_key: str | None,
    emulator: Any,
    table: str,
    nonce: str,
    iterations: int,
    *,
    events: int,
    warmup: int,
) -> Replay:
    """A stored stream (a miss of `events` events, unpaced) asked again and again, each time followed by the
    floor: a bare Starlette app under uvicorn doing one GetItem of the same item and answering the same bytes."""
    from gateway_dev.runner.asgi import BackgroundServer

    client = http_client()
    url, headers = gateway_url + CHAT_PATH, caller_headers(caller_key)
    body = stream_body(f"replayed stream {nonce}")
    before = cache_keys(table)
    with paced(emulator, events, 0.0):
        original = read_stream(client, url, body, headers)
    (key,) = cache_keys(table) - before
    if original.cache != "MISS" or not original.done:
        raise RuntimeError(f"replay priming: {original.status} {original.cache}")
    floor_server = BackgroundServer(replay_floor_app(table, key, original.body))
    samples: dict[str, list[float]] = {}
    replayed: Streamed | None = None
    kept = http_client(keep_alive=True)
    floor_url = floor_server.url + "/replay"
    try:
        for i in range(-warmup, iterations):  # fresh connections, gateway and floor alternating
            replayed = read_stream(client, url, body, headers)
            if replayed.status != 200 or replayed.cache != "HIT":
                raise RuntimeError(f"replay: {replayed.status} {replayed.cache}")
            floor = read_stream(client, floor_url, {}, {})
            if i >= 0:
                samples.setdefault("hit_first", []).append(replayed.first_ms)
                samples.setdefault("hit_total", []).append(replayed.total_ms)
                samples.setdefault("floor_first", []).append(floor.first_ms)
        # One kept-alive connection per server, each used back to back (alternating would let each
        # connection's acknowledgements arrive during the other's request and hide what this shows).
        for name, target, target_body, target_headers in (
            ("hit_first_kept", url, body, headers),
            ("floor_first_kept", floor_url, {}, {}),
        ):
            for i in range(-warmup, iterations):
                sample = read_stream(kept, target, target_body, target_headers)
                if i >= 0:
                    samples.setdefault(name, []).append(sample.first_ms)
    finally:
        floor_server.stop()
        client.close()
        kept.close()
    assert replayed is not None
    return Replay(
        **{name: stats(values) for name, values in samples.items()},
        events=replayed.events,
        original_events=original.events,
        bytes_equal=replayed.body == original.body,
    )


def replay_floor_app(table: str, key: str, answer: bytes) -> Any:
    """The least a replay over this HTTP path does: one GetItem of the stored item, the stored bytes out."""
    import boto3
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    dynamodb = boto3.session.Session().client("dynamodb")

    def replay(_: Request) -> Response:  # a sync endpoint: Starlette runs it in a worker thread, as the app does
        dynamodb.get_item(TableName=table, Key={"pk": {"S": key}})
        return Response(answer, media_type="text/event-stream")

    return Starlette(routes=[Route("/replay", replay, methods=["POST"])])
