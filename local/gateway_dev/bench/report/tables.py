"""The generated blocks of docs/benchmarks.md: tables (and lists of names) from one run, no prose.

Each function renders one block; `BLOCKS` names them as the markers in the document do."""

from __future__ import annotations

import itertools
from collections.abc import Callable

from gateway_dev.bench import cost as cost_model
from gateway_dev.bench.cost import AWS_PRICES, compute_per_million, mistral_prices, tokens_per_request
from gateway_dev.bench.memory import rss_mb
from gateway_dev.bench.peers.side_by_side import peer_rows
from gateway_dev.bench.report.rows import (
    Row,
    X,
    all_rows,
    code_list,
    kilobytes,
    markdown_table,
    profile_text,
    render,
)
from gateway_dev.bench.report.stream_tables import (
    stream_cold_block,
    stream_memory_block,
    stream_miss_block,
    stream_replay_block,
)
from gateway_dev.bench.run import Run
from gateway_dev.bench.settings import BORDERLINE, MB, MODEL, WATCHED_MODULES
from gateway_dev.bench.stats import ms, spread


def run_block(run: Run) -> str:
    info, sizes, warmup = run.machine, run.sizes, run.sizes.warmup_iterations
    uncounted = ", after one uncounted round" if sizes.warmup_rounds else ""
    machine = f"{info['platform']}, {info['processor']}, {info['cpu_count']} CPUs ({info['machine']}), {info['python']}"
    rows = [
        ["generated", f"{run.started:%Y-%m-%d %H:%M} UTC by `python -m gateway_dev.bench`, in {run.seconds:.0f} s"],
        ["machine", machine],
        ["function memory (`FunctionMemorySize`)", f"{run.memory_mb} MB"],
        ["cold starts (1, 2)", f"{sizes.cold_runs} fresh processes per kind{uncounted}"],
        ["cold starts of the streaming function (11)", f"{sizes.stream_cold_runs} per kind{uncounted}"],
        ["warm requests (3, 4)", f"{sizes.warm_iterations} each, after {warmup} uncounted"],
        ["warm misses with single-flight off (4)", str(sizes.no_lease_iterations)],
        ["mixed load (5)", f"{sizes.mixed_requests:,} requests"],
        ["over HTTP (8)", f"{sizes.http_iterations} calls each, after {warmup} uncounted"],
        ["streamed misses (9)", f"{sizes.stream_iterations}, after {sizes.stream_warmup} uncounted"],
        [
            "paced answer of a streamed miss (9)",
            f"{sizes.stream_events} events {sizes.stream_gap_s * 1000:.0f} ms apart",
        ],
        ["stream replays (10)", f"{sizes.replay_iterations} each way, after {warmup} uncounted"],
    ]
    return markdown_table(["run", ""], rows)


def figures_block(run: Run) -> str:
    rows = all_rows(run)
    checked = [row for row in rows if row.checked]
    missed = [row for row in checked if row.missed]
    close = [row for row in checked if row.borderline]
    lines = [
        render(rows),
        "",
        f"- targets met: {len(checked) - len(missed)} of {len(checked)}",
        f"- not met: {names(missed)}",
        f"- within {BORDERLINE:.0%} of the target (can flip on a rerun): {names(close)}",
    ]
    return "\n".join(lines)


def names(rows: list[Row]) -> str:
    return "; ".join(row.figure for row in rows) or "none"


def cold_block(run: Run) -> str:
    cold = run.cold
    floor, hit, miss = cold.floor, cold.hit, cold.miss
    hit_import, miss_import = hit.inside("import_ms").median, miss.inside("import_ms").median
    hit_total, miss_total = hit.inside().median, miss.inside().median
    times = markdown_table(
        ["", "import of the handler module", "first request", "in process", "whole process (pyperf)"],
        [
            ["floor (boto3 + GetItem)", "-", "-", ms(floor.inside().median), ms(floor.wall.median)],
            ["cache hit", ms(hit_import), ms(hit_total - hit_import), ms(hit_total), ms(hit.wall.median)],
            ["miss", ms(miss_import), ms(miss_total - miss_import), ms(miss_total), ms(miss.wall.median)],
        ],
    )
    if cold.shipped_hit:
        built = cold.shipped_hit.inside().median
        times += f"\n| cache hit, layer as built | - | - | {ms(built)} ({built - hit_total:+,.0f} ms) | - |"
    absent = [name for name in WATCHED_MODULES if name not in hit.loaded]
    modules = markdown_table(
        ["after", "loaded (watched modules in `sys.modules`)", "not loaded"],
        [
            ["a cold hit", code_list(hit.loaded), code_list(absent)],
            ["a cold miss", code_list(miss.loaded), code_list([n for n in WATCHED_MODULES if n not in miss.loaded])],
        ],
    )
    profiles = markdown_table(
        ["`-X importtime`, cumulative", "top-level imports", "inside them"],
        [
            ["cache hit", profile_text(cold.hit_profile.top_level), profile_text(cold.hit_profile.inside)],
            ["miss", profile_text(cold.miss_profile.top_level), profile_text(cold.miss_profile.inside)],
        ],
    )
    return "\n\n".join([times, modules, profiles])


def warm_block(run: Run) -> str:
    hit, miss, no_lease = run.hit, run.miss, run.miss_no_lease
    lease_ms = miss.billed.median - no_lease.billed.median  # both stores after the response: compare whole
    rows = [
        [
            label,
            *(ms(part.median) for part in (w.gateway, w.billed, w.gateway_cpu, w.floor)),
            f"{w.ratio:.2f}{X}",
            f"{w.log_bytes:,.0f}",
        ]
        for label, w in (("hit", hit), ("miss", miss), ("miss, single-flight off", no_lease))
    ]
    header = [
        "",
        "handler to its response, median",
        "billed: until the store after it, median",
        "CPU of the handler's thread",
        "floor, median",
        "ratio",
        "log + metrics bytes",
    ]
    lease = markdown_table(
        ["the single-flight lease", ""],
        [
            ["warm miss minus warm miss with it off", ms(lease_ms)],
            ["the same, in bare GetItems on this moto server", f"{lease_ms / hit.floor.median:.1f}{X}"],
        ],
    )
    return markdown_table(header, rows) + "\n\n" + lease


def prompt_size_block(run: Run) -> str:
    """Figure 13: what the gateway adds as the prompt grows, and how that grows per 10x of prompt."""
    sized = run.by_prompt_size
    rows = [
        [
            kilobytes(one.prompt_bytes),
            spread(one.miss),
            spread(one.first_event),
            str(len(one.miss.samples)),
        ]
        for one in sized
    ]
    table = markdown_table(
        ["prompt", "added to a miss (median, p95)", "added to the first event of a streamed miss", "pairs"], rows
    )
    if len(sized) < 2:
        return table
    growth = markdown_table(
        ["from", "to", "miss: added per extra kB", "first event: added per extra kB"],
        [
            [
                kilobytes(small.prompt_bytes),
                kilobytes(large.prompt_bytes),
                per_kb(large.miss.median - small.miss.median, large.prompt_bytes - small.prompt_bytes),
                per_kb(large.first_event.median - small.first_event.median, large.prompt_bytes - small.prompt_bytes),
            ]
            for small, large in itertools.pairwise(sized)
        ],
    )
    return "\n\n".join([table, growth])


def per_kb(extra_ms: float, extra_bytes: int) -> str:
    return f"{extra_ms / (extra_bytes / 1000) * 1000:,.1f} µs"


def peers_block(run: Run) -> str:
    """Side by side with other proxies (`make bench PEERS=litellm`); a run without peers says so."""
    if not run.peers:
        return "Not measured in this run: `make bench PEERS=litellm` measures LiteLLM's proxy side by side."
    tables = []
    for figures in run.peers:
        header = ["figure", "gateway (`make serve`)", f"{figures.name} {figures.version}", "ratio, gateway / peer"]
        tables.append(markdown_table(header, peer_rows(figures)))
    return "\n\n".join(tables)


def memory_block(run: Run) -> str:
    floor, hit, miss = (runs.peak_rss_mb for runs in (run.cold.floor, run.cold.hit, run.cold.miss))
    peak = rss_mb(run.mixed)
    rss = markdown_table(
        ["process", "peak RSS"],
        [
            ["floor: boto3 + client + one GetItem", f"{floor:.1f} MB"],
            ["gateway, cold start + one cache hit", f"{hit:.1f} MB"],
            ["gateway, cold start + one miss", f"{miss:.1f} MB"],
            [
                f"gateway after {run.sizes.mixed_requests:,} mixed requests ({run.mixed['seconds']:.1f} s)",
                f"{peak:.1f} MB",
            ],
            ["of which the requests, above a cold miss", f"{peak - miss:.1f} MB"],
        ],
    )
    counts = markdown_table(
        ["kind, status, X-Cache", "requests"], [[label, str(n)] for label, n in sorted(run.mixed["counts"].items())]
    )
    return rss + "\n\n" + counts


def layer_block(run: Run) -> str:
    layer = run.layer
    if not layer.measured:
        return f"Not measured: {layer.reason}."
    sizes = markdown_table(
        ["layer", "MB"],
        [
            ["unzipped", f"{layer.unzipped_bytes / MB:.1f}"],
            ["zipped", f"{layer.zipped_bytes / MB:.1f}"],
            ["floor: mistralai and what it requires", f"{layer.sdk_bytes / MB:.1f}"],
            ["added by the gateway", f"{(layer.unzipped_bytes - layer.sdk_bytes) / MB:.1f}"],
        ],
    )
    names = markdown_table(
        ["", "distributions"],
        [["the SDK's closure", ", ".join(layer.sdk_closure)], ["added by the gateway", ", ".join(layer.added)]],
    )
    largest = markdown_table(
        ["largest distributions", "MB"], [[name, f"{size / MB:.2f}"] for name, size in layer.packages[:5]]
    )
    return "\n\n".join([sizes, names, largest])


def cost_block(run: Run) -> str:
    cost = run.cost
    parts = [cost.hit, cost.miss, cost.miss_with_tokens, *(run.owned_cost or ())]
    items = [[name, *(f"${part.items()[name]:,.3f}" for part in parts)] for name in cost.hit.items()]
    totals = [f"**${part.total:,.2f}**" for part in parts]
    owned = ["owned read (ledger)", "owned create (ledger)"] if run.owned_cost else []
    table = markdown_table(
        ["line item, USD per 1M requests", "hit", "miss", "miss, tokens included", *owned],
        [*items, ["**total**", *totals]],
    )
    return table + "\n\n" + assumptions_table(run)


def assumptions_table(run: Run) -> str:
    cost = run.cost
    per_in, per_out = mistral_prices()
    prices = {name: value * 1e6 for name, value in AWS_PRICES.items()}  # per million
    wait = compute_per_million(cost_model.ASSUMED_MISTRAL_WAIT_S * 1000, run.memory_mb)
    rows = [
        [
            "Lambda arm64, per GB-s / per 1M requests",
            f"${AWS_PRICES['lambda_arm_per_gb_second']:.10f} / ${prices['lambda_per_request']:.2f}",
        ],
        ["API Gateway REST, per 1M requests", f"${prices['apigw_rest_per_request']:.2f}"],
        [
            "DynamoDB on-demand, per 1M write / read units",
            f"${prices['dynamodb_per_write_unit']:.3f} / ${prices['dynamodb_per_read_unit']:.3f}",
        ],
        ["Secrets Manager, per 10,000 calls", f"${AWS_PRICES['secrets_manager_per_call'] * 10_000:.2f}"],
        ["CloudWatch Logs ingestion, per GB", f"${AWS_PRICES['cloudwatch_logs_per_gb']:.2f}"],
        [
            f"Mistral `{MODEL}`, per 1M input / output tokens (`economics.LIST_PRICES`)",
            f"${per_in * 1e6:.2f} / ${per_out * 1e6:.2f}",
        ],
        ["requests that start a container (billed init)", f"{cost_model.COLD_START_SHARE:.0%}"],
        ["average billed duration, hit / miss", f"{cost.hit_billed_ms:.2f} ms / {cost.miss_billed_ms:.2f} ms"],
        ["vCPU at the function's memory", f"{run.memory_mb / cost_model.LAMBDA_FULL_VCPU_MB:.2f}"],
        [
            "DynamoDB read units per hit; read + write units per miss",
            f"{cost_model.READ_UNITS_PER_HIT:g}; {cost_model.READ_UNITS_PER_MISS:g} + "
            f"{cost_model.WRITE_UNITS_PER_MISS:g}",
        ],
        [
            "log bytes per hit / per miss, this run (+ Lambda's own lines)",
            f"{run.hit.log_bytes:,.0f} / {run.miss.log_bytes:,.0f} (+ {cost_model.PLATFORM_LOG_BYTES})",
        ],
        ["secret reads per warm container, USD a month (left out above)", f"${cost.secret_per_container_month:.2f}"],
        ["tokens per miss, in / out", f"{cost_model.TOKENS_IN} / {cost_model.TOKENS_OUT}"],
        ["tokens a hit saves, USD per 1M hits", f"${tokens_per_request() * 1e6:,.2f}"],
        [
            f"Lambda compute of waiting {cost_model.ASSUMED_MISTRAL_WAIT_S:g} s for a real answer, per 1M misses",
            f"${wait:,.2f}",
        ],
    ]
    return markdown_table(["assumption", "value"], rows)


def sizing_block(run: Run) -> str:
    wait = f"{cost_model.ASSUMED_MISTRAL_WAIT_S:g} s"
    header = [
        "MB",
        "vCPU",
        "warm hit",
        "cold hit",
        "compute per 1M hits",
        f"miss + {wait} wait",
        "compute per 1M misses",
    ]
    rows = [
        [
            str(row.memory_mb),
            f"{row.vcpu:.2f}",
            ms(row.hit_ms),
            ms(row.cold_hit_ms),
            f"${row.hit_compute_per_million:,.3f}",
            ms(row.miss_with_wait_ms),
            f"${row.miss_compute_per_million:,.2f}",
        ]
        for row in run.sizing
    ]
    peak = rss_mb(run.mixed)
    headroom = markdown_table(
        ["memory headroom over the peak RSS", ""],
        [[f"{row.memory_mb} MB", f"{row.memory_mb / peak:.1f}{X}"] for row in run.sizing],
    )
    return markdown_table(header, rows) + "\n\n" + headroom


def decisions_block(run: Run) -> str:
    """The figures the decisions in the document rest on."""
    cold = run.cold
    hit_imports = dict(cold.hit_profile.top_level)
    miss_only = sum(max(0.0, cost - hit_imports.get(name, 0.0)) for name, cost in cold.miss_profile.top_level)
    first_hit = cold.hit.inside().median - cold.hit.inside("import_ms").median
    first_miss = cold.miss.inside().median - cold.miss.inside("import_ms").median
    rows = [
        ["cold miss minus cold hit (in process)", ms(cold.miss.inside().median - cold.hit.inside().median)],
        ["of which, at least: imports only a miss makes (`-X importtime`)", ms(miss_only)],
        [
            "first request of a container, hit / miss (after the handler's import)",
            f"{ms(first_hit)} / {ms(first_miss)}",
        ],
        ["a warm request, hit / miss", f"{ms(run.hit.gateway.median)} / {ms(run.miss.gateway.median)}"],
        [
            "CPU of a warm hit / miss (handler's thread)",
            f"{ms(run.hit.gateway_cpu.median)} / {ms(run.miss.gateway_cpu.median)}",
        ],
        ["warm hit against a bare GetItem", f"{run.hit.ratio:.2f}{X}"],
        ["peak RSS after the mixed load", f"{rss_mb(run.mixed):.0f} MB"],
    ]
    return markdown_table(["figure", "this run"], rows)


BLOCKS: dict[str, Callable[[Run], str]] = {
    "run": run_block,
    "figures": figures_block,
    "cold": cold_block,
    "warm": warm_block,
    "stream-miss": stream_miss_block,
    "prompt-size": prompt_size_block,
    "peers": peers_block,
    "stream-replay": stream_replay_block,
    "stream-cold": stream_cold_block,
    "stream-memory": stream_memory_block,
    "memory": memory_block,
    "layer": layer_block,
    "cost": cost_block,
    "sizing": sizing_block,
    "decisions": decisions_block,
}
