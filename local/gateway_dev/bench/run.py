"""One run of the benchmark: the stack up, every figure measured in turn, the stack down."""

from __future__ import annotations

import contextlib
import os
import platform
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway_dev.bench.cold import ColdStarts, cold_starts
from gateway_dev.bench.cost import Cost, Costs, Sizing, costs, memory_sizing, owned_costs
from gateway_dev.bench.layer import Layer, build_layer
from gateway_dev.bench.ledger import LedgerFigures
from gateway_dev.bench.ledger import measure as measure_ledger
from gateway_dev.bench.memory import mixed_load
from gateway_dev.bench.over_http import OverHttp, over_http
from gateway_dev.bench.settings import Paths, Sizes
from gateway_dev.bench.stack import function_setting, progress, start_stack
from gateway_dev.bench.streaming import StreamFigures
from gateway_dev.bench.streaming import measure as measure_streaming
from gateway_dev.bench.warm import Warm, warm_hit, warm_miss


@dataclass(frozen=True)
class Run:
    """Everything one run measured, and what it was measured on."""

    started: datetime
    seconds: float
    machine: dict[str, Any]
    sizes: Sizes
    memory_mb: int
    cold: ColdStarts
    hit: Warm
    miss: Warm
    miss_no_lease: Warm
    mixed: dict[str, Any]  # the mixed-load child's report
    layer: Layer
    http: OverHttp
    cost: Costs
    sizing: list[Sizing]
    streaming: StreamFigures
    ledger: LedgerFigures | None = None  # figure 13: AccountRoutes=owned on an owned read and a create
    owned_cost: tuple[Cost, Cost] | None = None  # per 1M owned reads, creates


def measure(sizes: Sizes, paths: Paths) -> Run:
    started_at, started = datetime.now(UTC), time.perf_counter()
    paths.work.mkdir(parents=True, exist_ok=True)
    if sizes.build_layer:
        progress("building the layer (the one step that needs PyPI)")
        layer = build_layer(paths.layer)
    else:
        layer = Layer(False, reason="not built in this run (--smoke)")
    progress("starting moto and the Mistral emulator")
    stack = start_stack(paths)
    try:
        from gateway_dev.bridge import load_function

        function = load_function(stack.template, "ApiFunction")
        cold = cold_starts(stack, function, sizes, layer.measured)
        progress(f"warm hits and misses, {sizes.warm_iterations} each")
        hit = warm_hit(stack, function, sizes.warm_iterations, sizes.warmup_iterations)
        miss = warm_miss(stack, function, "lease", sizes.warm_iterations, sizes.warmup_iterations)
        with function_setting("SINGLE_FLIGHT_WAIT_MS", "0"):
            no_lease = warm_miss(stack, function, "no-lease", sizes.no_lease_iterations, sizes.warmup_iterations)
        progress(f"{sizes.mixed_requests:,} mixed requests in a fresh process")
        mixed = mixed_load(stack, sizes.mixed_requests)
        progress(f"the ownership ledger on owned reads and creates, {sizes.warm_iterations} each")
        ledger = measure_ledger(stack, function, sizes.warm_iterations, sizes.warmup_iterations)
        progress("the SDK through the local HTTP gateway and straight to the emulator")
        http = over_http(stack, sizes.http_iterations, sizes.warmup_iterations)
        streaming = measure_streaming(stack, sizes)
    finally:
        stack.stop()
    cold_hit, cold_miss = cold.hit.inside().median, cold.miss.inside().median
    cost = costs(
        stack.memory_mb, hit.gateway.median, miss.gateway.median, cold_hit, cold_miss, hit.log_bytes, miss.log_bytes
    )
    owned = owned_costs(
        stack.memory_mb,
        read_ms=ledger.read.handler.median,
        create_ms=ledger.create.handler.median,
        cold_ms=cold_hit,
        read_logs=ledger.read.log_bytes,
        create_logs=ledger.create.log_bytes,
    )
    sizing = memory_sizing(
        hit.gateway.median, hit.gateway_cpu.median, miss.gateway.median, miss.gateway_cpu.median, cold_hit
    )
    seconds = time.perf_counter() - started
    return Run(
        started_at, seconds, machine(), sizes, stack.memory_mb, cold, hit, miss, no_lease, mixed, layer, http, cost,
        sizing, streaming, ledger, owned,
    )  # fmt: skip


def machine() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": cpu_model(),
        "cpu_count": os.cpu_count(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
    }


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"
