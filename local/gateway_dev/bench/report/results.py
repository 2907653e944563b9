"""`.bench/results.json`: every raw number of a run, for whoever wants more than the document's tables."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from gateway_dev.bench.cold import ColdRuns
from gateway_dev.bench.memory import rss_mb
from gateway_dev.bench.report.rows import all_rows
from gateway_dev.bench.run import Run
from gateway_dev.bench.streaming import StreamFigures
from gateway_dev.bench.streaming.cold import ServerRun, server_stats
from gateway_dev.bench.streaming.miss import PHASES
from gateway_dev.bench.warm import Warm


def results_json(run: Run) -> dict[str, Any]:
    def children(runs: ColdRuns) -> dict[str, Any]:
        return {"in_process_ms": runs.inside().summary(), "wall_ms": runs.wall.summary(), "reports": runs.reports}

    def warm(result: Warm) -> dict[str, Any]:
        return {
            "gateway_ms": result.gateway.summary(),
            "billed_ms": result.billed.summary(),
            "gateway_thread_cpu_ms": result.gateway_cpu.summary(),
            "floor_ms": result.floor.summary(),
            "ratio_of_medians": result.ratio,
            "log_bytes_per_request": result.log_bytes,
        }

    cold, layer, http = run.cold, run.layer, run.http
    return {
        "date": run.started.isoformat(timespec="seconds"),
        "runtime_seconds": run.seconds,
        "machine": run.machine,
        "sizes": asdict(run.sizes),
        "function_memory_mb": run.memory_mb,
        "cold_start": {
            "floor": children(cold.floor),
            "hit": children(cold.hit),
            "miss": children(cold.miss),
            "hit_layer_as_built": children(cold.shipped_hit) if cold.shipped_hit else None,
            "hit_importtime_ms": asdict(cold.hit_profile),
            "miss_importtime_ms": asdict(cold.miss_profile),
        },
        "warm_hit": warm(run.hit),
        "warm_miss": warm(run.miss),
        "warm_miss_single_flight_off": warm(run.miss_no_lease),
        "memory": {**run.mixed, "peak_rss_mb": rss_mb(run.mixed)},
        "layer": {
            **asdict(layer),
            "sdk_closure_bytes": layer.sdk_bytes,
        },
        "http": {
            "gateway_hit_ms": http.hit.summary(),
            "gateway_miss_ms": http.miss.summary(),
            "direct_ms": http.direct.summary(),
            "upstream_calls_made_by_hits": http.upstream_calls_by_hits,
        },
        "cost_per_million_usd": {
            "hit": run.cost.hit.items(),
            "miss": run.cost.miss.items(),
            "miss_with_tokens": run.cost.miss_with_tokens.items(),
            "hit_avg_billed_ms": run.cost.hit_billed_ms,
            "miss_avg_billed_ms": run.cost.miss_billed_ms,
            "secret_reads_per_warm_container_month_usd": run.cost.secret_per_container_month,
        },
        "ownership_ledger": ledger_json(run),
        "memory_sizing": [asdict(row) for row in run.sizing],
        "streaming": streaming_json(run.streaming, run),
        "peers": [
            {
                "name": peer.name,
                "version": peer.version,
                "figures": {
                    pair.figure: {
                        "gateway_ms": pair.gateway.summary(),
                        "peer_ms": pair.peer.summary(),
                        "ratio": pair.ratio,
                    }
                    for pair in peer.pairs
                },
                "cold_start_ms": {"gateway": peer.gateway_cold_ms, "peer": peer.peer_cold_ms},
                "peak_rss_mb": {"gateway": peer.gateway_rss_mb, "peer": peer.peer_rss_mb},
            }
            for peer in run.peers
        ],
        "by_prompt_size": [
            {
                "prompt_bytes": one.prompt_bytes,
                "miss_added_ms": one.miss.summary(),
                "first_event_added_ms": one.first_event.summary(),
            }
            for one in run.by_prompt_size
        ],
        "table": [{**asdict(row), "verdict": row.verdict} for row in all_rows(run)],
    }


def streaming_json(figures: StreamFigures, run: Run) -> dict[str, Any]:
    miss, replay, cold = figures.miss, figures.replay, figures.cold

    def servers(runs: list[ServerRun]) -> dict[str, Any]:
        return {
            "ready_ms": server_stats(runs, "ready_ms").summary(),
            "answered_ms": server_stats(runs, "answered_ms").summary(),
            "first_event_ms": server_stats(runs, "first_event_ms").summary(),
            "statuses": [[one.status, one.cache] for one in runs],
        }

    return {
        "paced_answer": {"events": run.sizes.stream_events, "gap_ms": run.sizes.stream_gap_s * 1000},
        "miss": {
            "gateway_first_event_ms": miss.gateway_first.summary(),
            "floor_first_event_ms": miss.floor_first.summary(),
            "overhead_ms": miss.overhead.summary(),
            "gateway_second_event_ms": miss.gateway_second.summary(),
            "floor_second_event_ms": miss.floor_second.summary(),
            "gateway_whole_answer_ms": miss.gateway_total.summary(),
            "log_time_to_first_token_ms": miss.log_ttft.summary(),
            "events_forwarded": miss.events,
            "phases_ms": {name: miss.phases[name].summary() for name, _ in PHASES},
        },
        "replay": {
            "hit_first_event_ms": replay.hit_first.summary(),
            "hit_whole_answer_ms": replay.hit_total.summary(),
            "floor_first_event_ms": replay.floor_first.summary(),
            "hit_first_event_kept_alive_ms": replay.hit_first_kept.summary(),
            "floor_first_event_kept_alive_ms": replay.floor_first_kept.summary(),
            "events": replay.events,
            "original_events": replay.original_events,
            "bytes_equal_to_original": replay.bytes_equal,
        },
        "cold_start": {
            "floor": servers(cold.floor),
            "hit": servers(cold.hit),
            "miss": servers(cold.miss),
            "hit_importtime_ms": asdict(cold.hit_profile) if cold.hit_profile else None,
        },
        "seconds": figures.seconds,
    }


def ledger_json(run: Run) -> dict[str, Any] | None:
    if run.ledger is None or run.owned_cost is None:
        return None
    read_cost, create_cost = run.owned_cost

    def one(measured: Any, cost: Any) -> dict[str, Any]:
        return {
            "handler_ms": measured.handler.summary(),
            "ledger_dynamodb_ms": measured.ledger.summary(),
            "ledger_round_trips_per_request": measured.round_trips,
            "log_bytes_per_request": measured.log_bytes,
            "cost_per_million_usd": cost.items(),
        }

    return {"owned_read": one(run.ledger.read, read_cost), "create": one(run.ledger.create, create_cost)}
