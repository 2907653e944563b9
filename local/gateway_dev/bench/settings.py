"""Everything a run is made of, in one place: its sizes (full and smoke), targets, paths and names."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from gateway_dev.cloud.template import ROOT
from gateway_dev.runner.serve import LOCAL_ENVIRONMENT


@dataclass(frozen=True)
class Sizes:
    """How many of each measurement a run takes. `SMOKE` runs every code path once or twice, in seconds."""

    cold_runs: int = 15  # fresh processes per kind (floor, hit, miss), after one uncounted round: a median of 7
    # moved by up to a third between runs of the same code on a shared two-core machine
    warm_iterations: int = 200
    warmup_iterations: int = 10
    mixed_requests: int = 1000
    http_iterations: int = 40
    stream_events: int = 40  # the paced answer of issue 12: 40 events 50 ms apart (a 2 s answer)
    stream_gap_s: float = 0.05
    stream_iterations: int = 15  # each reads a whole paced answer through the gateway
    stream_warmup: int = 2
    replay_iterations: int = 40
    stream_cold_runs: int = 7
    memory_stream_tokens: int = 100_000  # figure 12: one answer this long, and each stalled reader's
    stalled_readers: int = 10
    prompt_size_iterations: int = 20  # figure 13: plain and streamed misses per prompt size
    build_layer: bool = True  # the one step that needs PyPI
    warmup_rounds: bool = True  # an uncounted first round of cold starts (bytecode written, file cache warm)

    @property
    def no_lease_iterations(self) -> int:
        """Warm misses with single-flight off: half as many as the other warm figures."""
        return max(1, self.warm_iterations // 2)


FULL = Sizes()
SMOKE = Sizes(
    cold_runs=1,
    warm_iterations=3,
    warmup_iterations=1,
    mixed_requests=20,
    http_iterations=2,
    stream_events=6,
    stream_gap_s=0.01,
    stream_iterations=2,
    stream_warmup=0,
    replay_iterations=2,
    stream_cold_runs=1,
    memory_stream_tokens=2_000,
    stalled_readers=2,
    prompt_size_iterations=1,
    build_layer=False,
    warmup_rounds=False,
)


# Where each file or folder of a run lives, under the work dir.
WORK_LAYOUT = {
    "results": "results.json",
    "cold_pyperf": "cold-starts.pyperf.json",  # pyperf's JSON: `python -m pyperf stats|compare_to` read it
    "layer": "layer",
    "pycache": "pycache",
    "stream_floor": "stream-floor",
    "scratch": "run",  # child reports and events of the current run
}


@dataclass(frozen=True)
class Paths:
    """Where a run reads and writes: `work` holds everything not committed (`.bench` by default)."""

    work: Path = ROOT / ".bench"
    doc: Path = ROOT / "docs" / "benchmarks.md"
    results: Path = field(init=False)
    cold_pyperf: Path = field(init=False)
    layer: Path = field(init=False)
    pycache: Path = field(init=False)
    stream_floor: Path = field(init=False)
    scratch: Path = field(init=False)

    def __post_init__(self) -> None:
        for name, relative in WORK_LAYOUT.items():
            object.__setattr__(self, name, self.work / relative)


# --- Targets.
TARGET_COLD_HIT_RATIO = 1.3
TARGET_COLD_MISS_EXTRA_MS = 450.0
TARGET_WARM_HIT_RATIO = 1.5
TARGET_WARM_MISS_RATIO = 1.3
TARGET_PEAK_RSS_MB = 100.0
TARGET_LAYER_MB = 25.0
# What the LiteLLM proxy adds to the first token in the same conditions, as measured for issue 12 (not run here).
TARGET_TTFT_OVERHEAD_MS = 13.0
# A verdict this close to its target can flip from one run to the next on a busy two-core laptop.
BORDERLINE = 0.10

# --- The function and the requests.
APP_PATH = ROOT / "functions" / "api" / "app.py"
STREAM_APP_DIR = ROOT / "functions" / "stream"
LAUNCHER = STREAM_APP_DIR / "run.sh"
MODEL = "mistral-small-latest"
CHAT_PATH = "/v1/chat/completions"
CALLER_KEY = "bench-caller-key"
CALLER_ID = "bench-caller"
READY_POLL_S = 0.005  # how often /ready is asked, as the Web Adapter's readiness check does
# The side by side, after a proxy's answer to a new question, before the next timed request (the same question
# straight to the emulator, or the other proxy's): the proxy's work after its response (the gateway's store,
# LiteLLM's cache write and callbacks) finishes first, as it would in its own container, instead of slowing the
# reference. Both proxies run in processes of their own there; where the gateway runs in the benchmark's process
# (figures 8 and 13), the benchmark waits for exactly its store instead (after_response.settle).
POST_RESPONSE_PAUSE_S = 0.03
# Modules that must stay off the cache-hit path (lazy imports), and the AWS SDK for comparison.
WATCHED_MODULES = ("mistralai", "pydantic", "pydantic_core", "httpx2", "aws_xray_sdk", "boto3", "botocore")
# make serve's local credentials and region, set over the shell's (a session token included, so none of the
# developer's goes along with them): the run does not depend on who starts it.
AWS_ENVIRONMENT = {**LOCAL_ENVIRONMENT, "AWS_SESSION_TOKEN": "local"}
MB = 1_000_000
