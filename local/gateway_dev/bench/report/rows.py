"""The figures table: one row per figure, its floor, the result and the verdict against its target."""

from __future__ import annotations

from dataclasses import dataclass

from gateway_dev.bench.cold import ColdStarts
from gateway_dev.bench.cost import COLD_START_SHARE, TOKENS_IN, TOKENS_OUT, Costs, apigw_per_million, tokens_per_request
from gateway_dev.bench.layer import Layer
from gateway_dev.bench.memory import rss_mb
from gateway_dev.bench.over_http import OverHttp
from gateway_dev.bench.prompt_size import SizedOverhead
from gateway_dev.bench.run import Run
from gateway_dev.bench.settings import (
    BORDERLINE,
    MB,
    TARGET_COLD_HIT_RATIO,
    TARGET_COLD_MISS_EXTRA_MS,
    TARGET_LAYER_MB,
    TARGET_PEAK_RSS_MB,
    TARGET_TTFT_OVERHEAD_MS,
    TARGET_WARM_HIT_RATIO,
    TARGET_WARM_MISS_RATIO,
)
from gateway_dev.bench.stats import ms, spread
from gateway_dev.bench.streaming import StreamFigures
from gateway_dev.bench.streaming.cold import server_stats
from gateway_dev.bench.warm import Warm

X = "\u00d7"  # the multiplication sign of ratios
COLD_FLOOR = "boto3 + client + GetItem in a fresh process"


@dataclass(frozen=True)
class Row:
    figure: str
    measured: str
    floor: str
    result: str
    target_text: str = "(information)"
    value: float | None = None  # what is checked against `target`, when the row has a target
    target: float | None = None

    @property
    def checked(self) -> bool:
        return self.value is not None and self.target is not None

    @property
    def margin(self) -> float:
        """How far the value is from the target, relative to it: negative = met."""
        assert self.value is not None and self.target is not None
        return (self.value - self.target) / self.target

    @property
    def missed(self) -> bool:
        return self.checked and self.margin > 0

    @property
    def borderline(self) -> bool:
        return self.checked and abs(self.margin) < BORDERLINE

    @property
    def verdict(self) -> str:
        if not self.checked:
            return "-"
        return f"NOT MET ({self.margin:.0%} over)" if self.missed else f"met ({-self.margin:.0%} under)"

    def cells(self) -> list[str]:
        return [self.figure, self.measured, self.floor, self.result, self.target_text, self.verdict]


def all_rows(run: Run) -> list[Row]:
    return [
        *cold_rows(run.cold),
        *warm_rows(run.hit, run.miss, run.miss_no_lease),
        memory_row(run),
        layer_row(run.layer),
        *cost_rows(run.cost),
        *http_rows(run.http),
        *stream_rows(run.streaming, run.sizes.stream_events, run.sizes.stream_gap_s),
        *prompt_size_rows(run.by_prompt_size),
        *ledger_rows(run),
    ]


def prompt_size_rows(sized: list[SizedOverhead]) -> list[Row]:
    """Figure 13: one row per prompt size (the detail is in the prompt-size block)."""
    return [
        Row(
            f"13. Added to a miss / a streamed miss's first event, {kilobytes(one.prompt_bytes)} prompt",
            f"+{spread(one.miss)} / +{spread(one.first_event)}",
            "the same request straight to the emulator, pair by pair",
            f"+{ms(one.miss.median)} / +{ms(one.first_event.median)}",
        )
        for one in sized
    ]


def kilobytes(size: int) -> str:
    return f"{size / 1000:,.0f} kB"


TARGET_LEDGER_ROUND_TRIPS = 1.0  # issue 19: one DynamoDB round trip on an owned read and on a create


def ledger_rows(run: Run) -> list[Row]:
    """Figure 14: the ownership ledger's round trips and time (AccountRoutes=owned), and a million of each priced."""
    if run.ledger is None or run.owned_cost is None:
        return []
    apigw = apigw_per_million()
    rows = []
    for label, measured, priced in (
        ("owned read (GET /v1/files/{id})", run.ledger.read, run.owned_cost[0]),
        ("create (POST /v1/files)", run.ledger.create, run.owned_cost[1]),
    ):
        rows.append(
            Row(
                f"14. Ownership ledger, {label}",
                f"{measured.round_trips:g} DynamoDB round trip(s), {ms(measured.ledger.median)} of "
                f"{ms(measured.handler.median)} handler median",
                "the same request without the ledger (AccountRoutes=shared): 0 round trips",
                f"+{ms(measured.ledger.median)}; ${priced.total:,.2f} per 1M (${apigw:,.2f}: API Gateway alone)",
                f"≤ {TARGET_LEDGER_ROUND_TRIPS:g} round trip",
                measured.round_trips,
                TARGET_LEDGER_ROUND_TRIPS,
            )
        )
    return rows


def render(rows: list[Row]) -> str:
    header = ["figure", "measured: median (p95)", "floor, same run", "result", "target", "verdict"]
    return markdown_table(header, [row.cells() for row in rows], pad=True)


def markdown_table(header: list[str], rows: list[list[str]], *, pad: bool = False) -> str:
    """A Markdown table; `pad` aligns the columns for a terminal."""
    cells = [header, *rows]
    widths = [max(len(line[column]) for line in cells) if pad else 0 for column in range(len(header))]

    def line(values: list[str]) -> str:
        return "| " + " | ".join(value.ljust(width) for value, width in zip(values, widths, strict=True)) + " |"

    separator = "|" + "|".join("-" * (width + 2) if pad else "---" for width in widths) + "|"
    return "\n".join([line(header), separator, *(line(values) for values in rows)])


def cold_rows(cold: ColdStarts) -> list[Row]:
    floor_in, floor_wall = cold.floor.inside(), cold.floor.wall
    hit_in, hit_wall = cold.hit.inside(), cold.hit.wall
    miss_in = cold.miss.inside()
    rows = [
        Row(
            "1. Cold start, cache hit (in process)",
            spread(hit_in),
            f"{spread(floor_in)}: {COLD_FLOOR}",
            f"{hit_in.median / floor_in.median:.2f}{X}",
            f"≤ {TARGET_COLD_HIT_RATIO}{X}",
            hit_in.median / floor_in.median,
            TARGET_COLD_HIT_RATIO,
        ),
        Row(
            "1. Cold start, cache hit (whole process)",
            spread(hit_wall),
            f"{spread(floor_wall)}: the same, interpreter start included",
            f"{hit_wall.median / floor_wall.median:.2f}{X}",
            f"≤ {TARGET_COLD_HIT_RATIO}{X}",
            hit_wall.median / floor_wall.median,
            TARGET_COLD_HIT_RATIO,
        ),
    ]
    if cold.shipped_hit:
        shipped = cold.shipped_hit.inside()
        rows.append(
            Row(
                "1. Cold start, cache hit, layer as built (no .pyc)",
                spread(shipped),
                f"{ms(floor_in.median)}: {COLD_FLOOR}",
                f"{shipped.median / floor_in.median:.2f}{X}",
            )
        )
    extra = miss_in.median - floor_in.median
    rows.append(
        Row(
            "2. Cold start, miss (import + first upstream answer)",
            spread(miss_in),
            f"{ms(floor_in.median)}: {COLD_FLOOR}",
            f"+{extra:,.0f} ms",
            f"≤ +{TARGET_COLD_MISS_EXTRA_MS:.0f} ms",
            extra,
            TARGET_COLD_MISS_EXTRA_MS,
        )
    )
    return rows


def warm_rows(hit: Warm, miss: Warm, miss_no_lease: Warm) -> list[Row]:
    miss_floor = "bare SDK chat.complete + GetItem + PutItem"
    return [
        Row(
            "3. Warm hit, handler time",
            spread(hit.gateway),
            f"{spread(hit.floor)}: bare boto3 GetItem",
            f"{hit.ratio:.2f}{X} (p95 {hit.gateway.p95 / hit.floor.p95:.2f}{X})",
            f"≤ {TARGET_WARM_HIT_RATIO}{X}",
            hit.ratio,
            TARGET_WARM_HIT_RATIO,
        ),
        Row(
            "4. Warm miss, handler time",
            spread(miss.gateway),
            f"{spread(miss.floor)}: {miss_floor}",
            f"{miss.ratio:.2f}{X} (p95 {miss.gateway.p95 / miss.floor.p95:.2f}{X})",
            f"≤ {TARGET_WARM_MISS_RATIO}{X}",
            miss.ratio,
            TARGET_WARM_MISS_RATIO,
        ),
        Row(
            "4. Warm miss, billed: the response, then the store after it",
            spread(miss.billed),
            f"{spread(miss.floor)}: {miss_floor}",
            f"{miss.billed.median / miss.floor.median:.2f}{X}",
        ),
        Row(
            "4. Warm miss, single-flight off (SINGLE_FLIGHT_WAIT_MS=0)",
            spread(miss_no_lease.gateway),
            f"{spread(miss_no_lease.floor)}: {miss_floor}",
            f"{miss_no_lease.ratio:.2f}{X}",
        ),
    ]


def memory_row(run: Run) -> Row:
    peak = rss_mb(run.mixed)
    floor = run.cold.floor.peak_rss_mb
    return Row(
        f"5. Peak RSS after {run.sizes.mixed_requests:,} mixed requests",
        f"{peak:.1f} MB",
        f"{floor:.1f} MB: {COLD_FLOOR}",
        f"{peak:.1f} MB ({peak / floor:.2f}{X} floor)",
        f"≤ {TARGET_PEAK_RSS_MB:.0f} MB",
        peak,
        TARGET_PEAK_RSS_MB,
    )


def layer_row(layer: Layer) -> Row:
    if not layer.measured:
        return Row("6. Layer size, unzipped", "not measured", layer.reason, "-", f"≤ {TARGET_LAYER_MB:.0f} MB")
    size = layer.unzipped_bytes / MB
    top = ", ".join(f"{name} {package / MB:.1f}" for name, package in layer.packages[:5])
    return Row(
        "6. Layer size, unzipped",
        f"{size:.1f} MB ({layer.zipped_bytes / MB:.1f} zipped); largest: {top}",
        f"{layer.sdk_bytes / MB:.1f} MB: mistralai + its dependencies",
        f"{size:.1f} MB ({size / (layer.sdk_bytes / MB):.2f}{X} floor)",
        f"≤ {TARGET_LAYER_MB:.0f} MB",
        size,
        TARGET_LAYER_MB,
    )


def cost_rows(result: Costs) -> list[Row]:
    apigw = apigw_per_million()
    tokens = tokens_per_request() * 1e6
    cold = f"{COLD_START_SHARE:.0%} cold starts"
    return [
        Row(
            "7. Cost per 1M hits",
            f"${result.hit.total:,.2f} (avg billed {result.hit_billed_ms:.1f} ms, {cold})",
            f"${apigw:,.2f}: API Gateway REST alone",
            f"{result.hit.total / apigw:.2f}{X}",
        ),
        Row(
            "7. Cost per 1M misses, tokens excluded",
            f"${result.miss.total:,.2f} (avg billed {result.miss_billed_ms:.1f} ms, {cold})",
            f"${apigw:,.2f}: API Gateway REST alone",
            f"{result.miss.total / apigw:.2f}{X}",
        ),
        Row(
            f"7. Cost per 1M misses, {TOKENS_IN}-in/{TOKENS_OUT}-out tokens included",
            f"${result.miss_with_tokens.total:,.2f}",
            f"${tokens:,.2f}: the same tokens bought from Mistral directly",
            f"{result.miss_with_tokens.total / tokens:.3f}{X}",
        ),
    ]


def http_rows(http: OverHttp) -> list[Row]:
    floor = f"{spread(http.direct)}: SDK straight to the emulator"
    return [
        Row(
            "8. SDK through local HTTP gateway, hit",
            spread(http.hit),
            floor,
            f"{http.hit.median / http.direct.median:.2f}{X}",
        ),
        Row(
            "8. SDK through local HTTP gateway, miss",
            spread(http.miss),
            floor,
            f"{http.miss.median / http.direct.median:.2f}{X}",
        ),
    ]


def stream_rows(figures: StreamFigures, events: int, gap_s: float) -> list[Row]:
    miss, replay, cold = figures.miss, figures.replay, figures.cold
    overhead = miss.overhead
    floor_text = f"{events} events {gap_s * 1000:.0f} ms apart"
    cold_floor = server_stats(cold.floor, "answered_ms")
    cold_hit, cold_miss = server_stats(cold.hit, "answered_ms"), server_stats(cold.miss, "answered_ms")
    return [
        Row(
            "9. Streamed miss, first event over HTTP, minus the upstream's",
            spread(miss.gateway_first),
            f"{spread(miss.floor_first)}: httpx2 straight to the emulator ({floor_text})",
            f"+{ms(overhead.median)} (p95 +{ms(overhead.p95)})",
            f"≤ +{TARGET_TTFT_OVERHEAD_MS:.0f} ms (LiteLLM's, from issue 12)",
            overhead.median,
            TARGET_TTFT_OVERHEAD_MS,
        ),
        Row(
            "10. Cached stream replayed, first event over HTTP",
            spread(replay.hit_first),
            f"{spread(replay.floor_first)}: bare Starlette app, same server kind, one GetItem + the same bytes",
            f"+{ms(replay.hit_first.median - replay.floor_first.median)}; {replay.events} events "
            f"(original {replay.original_events})",
        ),
        Row(
            "11. Streaming function cold start, cache hit (spawn to answer)",
            spread(cold_hit),
            f"{spread(cold_floor)}: run.sh + bare Starlette app + boto3 GetItem",
            f"{cold_hit.median / cold_floor.median:.2f}{X}",
        ),
        Row(
            "11. Streaming function cold start, miss (spawn to answer)",
            spread(cold_miss),
            f"{ms(cold_floor.median)}: the same floor",
            f"+{cold_miss.median - cold_floor.median:,.0f} ms",
        ),
        *stream_memory_rows(figures),
    ]


def stream_memory_rows(figures: StreamFigures) -> list[Row]:
    memory = figures.memory
    if memory is None:
        return []
    return [
        Row(
            f"12. Streaming function peak RSS, one {memory.tokens:,}-token stream",
            f"{memory.long_mb:.1f} MB",
            f"{memory.baseline_mb:.1f} MB: the same process after a 20-token stream",
            f"+{memory.long_growth_mb:.1f} MB",
        ),
        Row(
            f"12. Streaming function peak RSS, {memory.readers} stalled readers",
            f"{memory.stalled_mb:.1f} MB",
            f"{memory.stalled_baseline_mb:.1f} MB: the same process after a 20-token stream",
            f"+{memory.stalled_growth_mb:.1f} MB (+{memory.stalled_growth_mb / memory.readers:.2f} MB each)",
        ),
    ]


def code_list(names: list[str]) -> str:
    return ", ".join(f"`{name}`" for name in names) or "none"


def profile_text(profile: list[tuple[str, float]]) -> str:
    return ", ".join(f"`{name}` {cost:.0f} ms" for name, cost in profile) or "none"


def significant(profile: list[tuple[str, float]]) -> list[tuple[str, float]]:
    return [(name, cost) for name, cost in profile if cost >= 1.0]
