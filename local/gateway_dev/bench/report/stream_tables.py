"""The generated blocks of docs/benchmarks.md about streams: a miss streamed through
the gateway, a cached stream replayed, the streaming function's cold start and its memory over long streams."""

from __future__ import annotations

from gateway_dev.bench.report.rows import X, markdown_table, profile_text, significant
from gateway_dev.bench.run import Run
from gateway_dev.bench.settings import TARGET_TTFT_OVERHEAD_MS
from gateway_dev.bench.stats import ms, spread
from gateway_dev.bench.streaming.cold import ServerRun, server_stats
from gateway_dev.bench.streaming.miss import PHASES


def stream_miss_block(run: Run) -> str:
    miss = run.streaming.miss
    first = markdown_table(
        ["", "through the gateway", "straight from the emulator", "difference (first event: pair by pair)"],
        [
            ["first `data:` event", spread(miss.gateway_first), spread(miss.floor_first), spread(miss.overhead)],
            [
                "second event (first token)",
                spread(miss.gateway_second),
                spread(miss.floor_second),
                ms(miss.gateway_second.median - miss.floor_second.median),
            ],
            ["whole answer", spread(miss.gateway_total), f"≥ {miss.answer_s * 1000:,.0f} ms by construction", "-"],
        ],
    )
    phase_sum = sum(miss.phases[name].median for name, _ in PHASES)
    upstream_part = miss.phases["open"].median + miss.phases["first_read"].median
    phases = markdown_table(
        ["step", "median", "p95"],
        [[text, ms(miss.phases[name].median), ms(miss.phases[name].p95)] for name, text in PHASES],
    )
    facts = markdown_table(
        ["", ""],
        [
            ["`data:` events forwarded per answer ([DONE] included)", str(miss.events)],
            ["first event to last, through the gateway", ms(miss.gateway_total.median - miss.gateway_first.median)],
            ["sum of the steps' medians / median first event", f"{ms(phase_sum)} / {ms(miss.gateway_first.median)}"],
            ["Mistral's part (stream opened + first event read)", ms(upstream_part)],
            [
                "Mistral's part minus the floor's first event (the SDK's own)",
                ms(upstream_part - miss.floor_first.median),
            ],
            ["the gateway's own part (the other steps)", ms(phase_sum - upstream_part)],
            ["the log line's `time_to_first_token_ms`", spread(miss.log_ttft)],
            [
                f"overhead against the {TARGET_TTFT_OVERHEAD_MS:.0f} ms target: median / p95",
                f"{ms(miss.overhead.median)} / {ms(miss.overhead.p95)} ({len(miss.overhead.samples)} samples)",
            ],
        ],
    )
    return "\n\n".join([first, phases, facts])


def stream_replay_block(run: Run) -> str:
    replay = run.streaming.replay
    times = markdown_table(
        ["", "first `data:` event", "whole answer"],
        [
            ["cache hit through the gateway", spread(replay.hit_first), spread(replay.hit_total)],
            ["floor: bare Starlette app, one GetItem, the same bytes", spread(replay.floor_first), "-"],
            ["cache hit, one kept-alive connection, back to back", spread(replay.hit_first_kept), "-"],
            ["floor, one kept-alive connection, back to back", spread(replay.floor_first_kept), "-"],
        ],
    )
    facts = markdown_table(
        ["", ""],
        [
            ["`data:` events replayed / when it was a miss", f"{replay.events} / {replay.original_events}"],
            ["byte for byte the original stream", "yes" if replay.bytes_equal else "NO"],
            ["hit minus floor, fresh connections", ms(replay.hit_first.median - replay.floor_first.median)],
            [
                "hit minus floor, kept-alive connections",
                ms(replay.hit_first_kept.median - replay.floor_first_kept.median),
            ],
        ],
    )
    return times + "\n\n" + facts


def stream_cold_block(run: Run) -> str:
    cold = run.streaming.cold

    def line(label: str, runs: list[ServerRun]) -> list[str]:
        ready, answered = server_stats(runs, "ready_ms"), server_stats(runs, "answered_ms")
        return [label, ms(ready.median), ms(server_stats(runs, "request_ms").median), ms(answered.median)]

    times = markdown_table(
        ["process, spawn to", "/ready answers", "first request", "answered"],
        [
            line("floor: run.sh + bare Starlette + boto3 GetItem", cold.floor),
            line("streaming function, cache hit", cold.hit),
            line("streaming function, miss", cold.miss),
        ],
    )
    buffered = run.cold.hit.wall.median / run.cold.floor.wall.median
    streamed = server_stats(cold.hit, "answered_ms").median / server_stats(cold.floor, "answered_ms").median
    ratios = markdown_table(
        ["cold hit against its floor", "ratio"],
        [
            ["buffered function (figure 1, whole process)", f"{buffered:.2f}{X}"],
            ["streaming function", f"{streamed:.2f}{X}"],
        ],
    )
    blocks = [times, ratios]
    if cold.hit_profile is not None:
        blocks.append(
            markdown_table(
                ["cold streamed hit, `PYTHONPROFILEIMPORTTIME=1`", "top-level imports", "inside them"],
                [
                    [
                        "uvicorn's own included",
                        profile_text(significant(cold.hit_profile.top_level)),
                        profile_text(significant(cold.hit_profile.inside)),
                    ]
                ],
            )
        )
    return "\n\n".join(blocks)


def stream_memory_block(run: Run) -> str:
    memory = run.streaming.memory
    if memory is None:
        return "not measured in this run"
    return markdown_table(
        ["streaming function process", "peak RSS", "above its baseline"],
        [
            ["after a 20-token stream (baseline)", f"{memory.baseline_mb:.1f} MB", ""],
            [
                f"after one {memory.tokens:,}-token stream, read whole ({memory.long_events:,} events)",
                f"{memory.long_mb:.1f} MB",
                f"+{memory.long_growth_mb:.1f} MB",
            ],
            ["another process, after a 20-token stream (baseline)", f"{memory.stalled_baseline_mb:.1f} MB", ""],
            [
                f"{memory.readers} readers of {memory.tokens:,}-token streams, stalled {memory.stalled_seconds:.1f} s",
                f"{memory.stalled_mb:.1f} MB",
                f"+{memory.stalled_growth_mb:.1f} MB",
            ],
        ],
    )
