"""One run of the benchmark: the stack up, every figure measured in turn, the stack down."""

from __future__ import annotations

import contextlib
import os
import platform
import time
from dataclasses import dataclass, field
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
from gateway_dev.bench.peers.side_by_side import PeerFigures
from gateway_dev.bench.processes import free_port
from gateway_dev.bench.prompt_size import SizedOverhead, prompt_sizes
from gateway_dev.bench.settings import CALLER_ID, CALLER_KEY, Paths, Sizes
from gateway_dev.bench.stack import captured_output, function_setting, progress, start_stack
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
    by_prompt_size: list[SizedOverhead]
    ledger: LedgerFigures | None = None  # figure 14: AccountRoutes=owned on an owned read and a create
    owned_cost: tuple[Cost, Cost] | None = None  # per 1M owned reads, creates
    peers: list[PeerFigures] = field(default_factory=list)  # `make bench PEERS=litellm`


def measure(sizes: Sizes, paths: Paths, peers: tuple[str, ...] = ()) -> Run:
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
        from gateway_dev.runner.functions import load_function

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
        progress(f"misses by prompt size, {sizes.prompt_size_iterations} per size")
        by_prompt_size = measure_prompt_sizes(stack, sizes)
        peer_figures = [measure_peer(name, stack, sizes, paths) for name in peers]
    finally:
        stack.stop()
    cold_hit, cold_miss = cold.hit.inside("billed_ms").median, cold.miss.inside("billed_ms").median
    cost = costs(  # Lambda bills a miss until its store after the response is done
        stack.memory_mb, hit.billed.median, miss.billed.median, cold_hit, cold_miss, hit.log_bytes, miss.log_bytes
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
        hit.billed.median, hit.gateway_cpu.median, miss.billed.median, miss.gateway_cpu.median, cold_hit
    )
    seconds = time.perf_counter() - started
    return Run(
        started_at, seconds, machine(), sizes, stack.memory_mb, cold, hit, miss, no_lease, mixed, layer, http, cost,
        sizing, streaming, by_prompt_size, ledger, owned,
        [with_gateway(figures, cold, mixed) for figures in peer_figures],
    )  # fmt: skip


PEERS = ("litellm",)


def measure_peer(name: str, stack: Any, sizes: Sizes, paths: Paths) -> PeerFigures:
    """A peer proxy installed in its own venv, pointed at this run's emulator, measured beside the gateway under
    `make serve` in a process of its own (peers/served.py; the gateway's cold start and memory are filled in
    from figures 1 and 5)."""
    from gateway_dev.bench.peers import litellm, served
    from gateway_dev.bench.peers.side_by_side import Side, compare
    from gateway_dev.bench.settings import MODEL
    from gateway_dev.bench.stack import chat_body
    from gateway_dev.bench.streaming.client import caller_headers, http_client

    if name not in PEERS:
        raise ValueError(f"unknown peer {name!r}: known are {', '.join(PEERS)}")
    progress(f"installing LiteLLM {litellm.VERSION} in its own venv (first time only)")
    executable = litellm.install(paths.work)
    config = litellm.write_config(paths.scratch / "litellm.yaml", stack.emulator.url, stack.mistral_key, MODEL)
    started = time.perf_counter()
    proxy = litellm.start(executable, config, free_port(), log=paths.scratch / "litellm.log")
    try:
        with http_client() as client:
            first = client.post(
                proxy.url + "/v1/chat/completions",
                json=chat_body(f"peer cold {stack.nonce}"),
                headers=caller_headers(litellm.MASTER_KEY),
            )
        if first.status_code != 200:
            raise RuntimeError(f"LiteLLM's first answer: {first.status_code} {first.text[:300]}")
        cold_ms = (time.perf_counter() - started) * 1000
        progress(f"the gateway under make serve and LiteLLM {litellm.VERSION}, side by side")
        gateway = served.serve(stack, paths.scratch / "served.log")
        try:
            pairs = compare(
                Side("gateway", gateway.url, CALLER_KEY, cache_header=True),
                Side(name, proxy.url, litellm.MASTER_KEY),
                stack.emulator, stack.nonce, sizes.http_iterations, min(2, sizes.warmup_iterations),
            )  # fmt: skip
        finally:
            gateway.stop()
        _, peak_mb = proxy.rss_mb()
    finally:
        proxy.stop()
    return PeerFigures(name, litellm.VERSION, pairs, cold_ms, 0.0, peak_mb, 0.0)


def with_gateway(figures: PeerFigures, cold: ColdStarts, mixed: dict[str, Any]) -> PeerFigures:
    from dataclasses import replace

    from gateway_dev.bench.memory import rss_mb

    return replace(figures, gateway_cold_ms=cold.hit.wall.median, gateway_rss_mb=rss_mb(mixed))


def measure_prompt_sizes(stack: Any, sizes: Sizes) -> list[SizedOverhead]:
    """Figure 13 through the local HTTP gateway (`make serve`'s), against the emulator straight."""
    from gateway_dev.runner.asgi import BackgroundServer, LocalGateway
    from gateway_dev.runner.bridge import ApiBridge

    server = BackgroundServer(LocalGateway(ApiBridge(stack.template, api_keys={CALLER_KEY: CALLER_ID})))
    try:
        with captured_output():
            return prompt_sizes(
                server.url, CALLER_KEY, stack.emulator, stack.nonce, sizes.prompt_size_iterations,
                warmup=min(2, sizes.warmup_iterations),
            )  # fmt: skip
    finally:
        server.stop()


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
