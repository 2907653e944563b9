"""The streaming figures (issue 12): 9, first event of a streamed miss (`miss`); 10, a cached stream replayed
(`replay`); 11, the streaming function's cold start (`cold`); 12, its memory against a long stream and stalled
readers (`memory`, issue 21). `client` reads a stream as a client does."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from gateway_dev.bench.settings import CALLER_ID, CALLER_KEY, Sizes
from gateway_dev.bench.stack import Stack, captured_output, progress
from gateway_dev.bench.streaming.cold import StreamCold, stream_cold_starts
from gateway_dev.bench.streaming.memory import StreamMemory, stream_memory
from gateway_dev.bench.streaming.miss import StreamedMiss, streamed_miss
from gateway_dev.bench.streaming.replay import Replay, stream_replay


@dataclass(frozen=True)
class StreamFigures:
    miss: StreamedMiss
    replay: Replay
    cold: StreamCold
    seconds: dict[str, float] = field(default_factory=dict)  # how long each part took
    memory: StreamMemory | None = None


def measure(stack: Stack, sizes: Sizes) -> StreamFigures:
    """Figures 9-11 on the run's stack (moto server, emulator, the function's environment in os.environ)."""
    from gateway_dev.runner.asgi import BackgroundServer, LocalGateway
    from gateway_dev.runner.bridge import ApiBridge

    seconds: dict[str, float] = {}
    server = BackgroundServer(LocalGateway(ApiBridge(stack.template, api_keys={CALLER_KEY: CALLER_ID})))
    answer_s = (sizes.stream_events - 1) * sizes.stream_gap_s
    try:
        with captured_output():
            progress(
                f"streamed misses through the local HTTP gateway, {sizes.stream_iterations} x a {answer_s:.1f} s answer"
            )
            started = time.perf_counter()
            miss = streamed_miss(
                server.url, CALLER_KEY, stack.emulator, stack.nonce, sizes.stream_iterations,
                events=sizes.stream_events, gap_s=sizes.stream_gap_s, warmup=sizes.stream_warmup,
            )  # fmt: skip
            seconds["miss"] = time.perf_counter() - started
            progress(f"cached stream replays, {sizes.replay_iterations}")
            started = time.perf_counter()
            replay = stream_replay(
                server.url, CALLER_KEY, stack.emulator, stack.table, stack.nonce, sizes.replay_iterations,
                events=sizes.stream_events, warmup=sizes.warmup_iterations,
            )  # fmt: skip
            seconds["replay"] = time.perf_counter() - started
    finally:
        server.stop()
    started = time.perf_counter()
    cold = stream_cold_starts(
        stack.template, stack.child_env(), stack.table, stack.nonce, sizes.stream_cold_runs,
        warmup=sizes.warmup_rounds, floor_dir=stack.paths.stream_floor,
    )  # fmt: skip
    seconds["cold"] = time.perf_counter() - started
    progress(
        f"streaming function memory: a {sizes.memory_stream_tokens:,}-token stream, "
        f"{sizes.stalled_readers} stalled readers"
    )
    started = time.perf_counter()
    memory = stream_memory(
        stack.template, stack.child_env(), stack.emulator, stack.nonce,
        tokens=sizes.memory_stream_tokens, readers=sizes.stalled_readers,
    )  # fmt: skip
    seconds["memory"] = time.perf_counter() - started
    return StreamFigures(miss, replay, cold, seconds, memory)
