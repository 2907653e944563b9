"""Figures 1 and 2: cold starts of the buffered function (hit, miss) against a fresh boto3 GetItem.

Each round runs pyperf (`pyperf_cold`) once: it times floor, hit and miss, each a fresh process, from spawn to exit;
the children themselves report their in-process times, status and modules to JSON-lines files. Round 0 is not
counted: it writes the bytecode and warms the OS file cache."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway_dev.bench.importtime import ImportProfile, import_profile
from gateway_dev.bench.memory import rss_mb
from gateway_dev.bench.settings import APP_PATH, WATCHED_MODULES, Sizes
from gateway_dev.bench.stack import Stack, chat_event, child_command, prime, progress, read_reports, run_child
from gateway_dev.bench.stats import Stats, stats

KINDS = ("floor", "hit", "miss")


@dataclass(frozen=True)
class ColdRuns:
    """One kind of cold start: what each process reported, and pyperf's spawn-to-exit times."""

    reports: list[dict[str, Any]]
    wall_ms: list[float]

    def inside(self, key: str = "total_ms") -> Stats:
        return stats(report[key] for report in self.reports)

    @property
    def wall(self) -> Stats:
        return stats(self.wall_ms)

    @property
    def peak_rss_mb(self) -> float:
        """The median of the processes' peak RSS."""
        return statistics.median(rss_mb(report) for report in self.reports)

    @property
    def loaded(self) -> list[str]:
        return sorted({name for report in self.reports for name in report.get("loaded", [])})


@dataclass(frozen=True)
class ColdStarts:
    floor: ColdRuns
    hit: ColdRuns
    miss: ColdRuns
    shipped_hit: ColdRuns | None  # the hit from the built layer (only on CPython 3.13, whose bytecode it ships)
    hit_profile: ImportProfile  # one more cold hit and miss under `-X importtime`
    miss_profile: ImportProfile


def cold_starts(stack: Stack, function: Any, sizes: Sizes, layer_built: bool) -> ColdStarts:
    scratch = stack.paths.scratch / "cold"
    scratch.mkdir(parents=True, exist_ok=True)
    hit_text = f"cold start question {stack.nonce}"
    key = prime(stack, function, hit_text)
    hit_event, miss_event = scratch / "hit-event.json", scratch / "miss-event.json"
    hit_event.write_text(json.dumps(chat_event(hit_text)))
    miss_event.write_text(json.dumps(chat_event(f"cold miss {stack.nonce} @@fresh@@")))
    reports = {name: scratch / f"{name}.jsonl" for name in (*KINDS, "shipped")}

    def gateway(event: Path, expected: str, report: Path, flags: tuple[str, ...] = ()) -> list[str]:
        args = [str(APP_PATH), str(event), str(stack.memory_mb), ",".join(WATCHED_MODULES), expected, str(report)]
        return child_command("cold_lambda", *args, flags=flags)

    commands = {
        "floor": child_command("cold_floor", stack.table, key, str(reports["floor"])),
        "hit": gateway(hit_event, "HIT", reports["hit"]),
        "miss": gateway(miss_event, "MISS", reports["miss"]),
    }
    shipped = layer_built and sys.version_info[:2] == (3, 13)  # the layer's bytecode is CPython 3.13's
    shipped_env = stack.child_env(PYTHONPATH=str(stack.paths.layer / "python"), PYTHONDONTWRITEBYTECODE="1")
    output = stack.paths.cold_pyperf
    warmup_output = scratch / "round-0.pyperf.json"
    for path in (output, warmup_output, *reports.values()):
        path.unlink(missing_ok=True)
    for run in range(-1 if sizes.warmup_rounds else 0, sizes.cold_runs):
        progress(f"cold starts, round {run + 1} of {sizes.cold_runs}")
        if run == 0:  # round 0 wrote bytecode and warmed the file cache: its reports are not counted
            for path in reports.values():
                path.unlink(missing_ok=True)
        target = warmup_output if run < 0 else output
        pyperf_round(commands, target, scratch, stack.child_env())
        if shipped:
            pyperf_round({"shipped": gateway(hit_event, "HIT", reports["shipped"])}, target, scratch, shipped_env)
    walls = wall_times(output)
    runs = {name: ColdRuns(read_reports(reports[name]), walls[name]) for name in KINDS}
    shipped_runs = ColdRuns(read_reports(reports["shipped"]), walls["shipped"]) if shipped else None
    profiled, importtime = scratch / "profile.jsonl", ("-X", "importtime")
    hit_profile = import_profile(run_child(gateway(hit_event, "HIT", profiled, importtime), stack.child_env()))
    miss_profile = import_profile(run_child(gateway(miss_event, "MISS", profiled, importtime), stack.child_env()))
    return ColdStarts(runs["floor"], runs["hit"], runs["miss"], shipped_runs, hit_profile, miss_profile)


def pyperf_round(commands: dict[str, list[str]], output: Path, scratch: Path, env: dict[str, str]) -> None:
    """One value of each command, a fresh pyperf worker each, appended to `output` (pyperf's JSON)."""
    spec = scratch / "spec.json"
    spec.write_text(json.dumps({"commands": commands}))
    pyperf_options = ["--processes=1", "--values=1", "--warmups=0", "--loops=1", "--copy-env", "--quiet"]
    command = [sys.executable, "-m", "gateway_dev.bench.pyperf_cold", "--spec", str(spec), *pyperf_options]
    done = subprocess.run(
        [*command, "--append", str(output)], env=env, capture_output=True, text=True, timeout=600, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"pyperf cold starts failed ({done.returncode}):\n{(done.stdout + done.stderr)[-3000:]}")


def wall_times(path: Path) -> dict[str, list[float]]:
    """Spawn-to-exit ms of each benchmark in pyperf's JSON."""
    import pyperf

    suite = pyperf.BenchmarkSuite.load(str(path))
    return {bench.get_name(): [value * 1000 for value in bench.get_values()] for bench in suite.get_benchmarks()}
