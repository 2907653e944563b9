"""The streaming figures of `make bench` (issue 12): first event of a streamed miss, a cached stream replayed,
and the streaming function's cold start, each against a floor measured in the same run.

- 9. Time to first event of a warm streamed miss through the local HTTP gateway (uvicorn + LocalGateway, as
  `make serve`), minus the emulator's own, while the emulator streams a paced answer (40 events 50 ms apart).
  Where the time goes comes from perf_counter marks around the steps of `streaming.completion_stream`.
- 10. First event of a cached stream replayed, against a bare Starlette app on the same kind of uvicorn server
  doing one GetItem of the same item and answering the same bytes.
- 11. The streaming function's cold start: a fresh process started by `run.sh` (the Lambda Web Adapter's entry
  point: `python -m uvicorn app:app`), polled on /ready as the adapter does, then one request; against the same
  launcher serving a bare Starlette app whose request does one boto3 GetItem.

Kept apart from bench.py (called from its `measure()` and its doc writer) so the benchmark can be split later.
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway_dev.bench import (
    BENCH_DIR,
    CALLER_ID,
    CALLER_KEY,
    CHAT_PATH,
    MODEL,
    WARMUP_ITERATIONS,
    ChildRun,
    ImportProfile,
    Row,
    Stats,
    X,
    import_profile,
    ms,
    profile_text,
    progress,
    spread,
    stats,
)
from gateway_dev.template import ROOT, Template

# --- Size of the run. The paced answer is the issue's: 40 events 50 ms apart (a 2 s answer).
STREAM_EVENTS = 40
STREAM_GAP_S = 0.05
STREAM_ITERATIONS = 15  # each reads a whole 2 s answer through the gateway
STREAM_WARMUP = 2
REPLAY_ITERATIONS = 40
STREAM_COLD_RUNS = 7
READY_POLL_S = 0.005  # how often the parent asks /ready, as the Web Adapter's readiness check does

# --- Target: what the LiteLLM proxy adds to the first token in the same conditions, as measured for issue 12.
# A fixed figure from the issue: LiteLLM is not run here.
TARGET_TTFT_OVERHEAD_MS = 13.0

STREAM_APP_DIR = ROOT / "functions" / "stream"
LAUNCHER = STREAM_APP_DIR / "run.sh"
FLOOR_APP_DIR = BENCH_DIR / "stream-floor"

# The cold-start floor: the least a function behind the Web Adapter that reads this table does. run.sh starts
# it as `app:app` from its own directory; its request does one GetItem (a key from the environment).
FLOOR_APP = '''"""make bench: the cold-start floor of the streaming function (written by gateway_dev.bench_stream)."""
import os

import boto3
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

client = boto3.client("dynamodb")


def ready(request):
    return Response("ready")


def answer(request):
    key = {"pk": {"S": os.environ["BENCH_FLOOR_KEY"]}}
    item = client.get_item(TableName=os.environ["CACHE_TABLE_NAME"], Key=key).get("Item")
    return Response("data: found\\n\\n" if item else "data: missing\\n\\n", media_type="text/event-stream")


app = Starlette(routes=[Route("/ready", ready), Route("/v1/chat/completions", answer, methods=["POST"])])
'''


# --- reading a stream -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Streamed:
    """One streamed answer as a client saw it; times are perf_counter() seconds."""

    sent: float
    first: float | None  # the first `data:` event
    second: float | None  # the second (the first that carries a token)
    end: float
    events: int  # `data:` events, [DONE] included
    done: bool  # ended with `data: [DONE]`
    status: int
    cache: str | None
    body: bytes

    @property
    def first_ms(self) -> float:
        if self.first is None:
            raise RuntimeError(f"no event in the answer ({self.status}): {self.body[:200]!r}")
        return (self.first - self.sent) * 1000

    @property
    def second_ms(self) -> float:
        return ((self.second or self.end) - self.sent) * 1000

    @property
    def total_ms(self) -> float:
        return (self.end - self.sent) * 1000


def http_client(*, keep_alive: bool = False) -> Any:
    """A fresh connection per request for every client (the floor hangs up early: no side keeps one warm).
    `keep_alive`: one connection per server, reused, as SDK clients do."""
    import httpx2

    if keep_alive:
        return httpx2.Client(timeout=30.0, trust_env=False)
    return httpx2.Client(timeout=30.0, trust_env=False, limits=httpx2.Limits(max_keepalive_connections=0))


def read_stream(
    client: Any, url: str, body: dict[str, Any], headers: dict[str, str], *, whole: bool = True
) -> Streamed:
    """POST `body` and read the SSE answer, stamping each `data:` event as it arrives. `whole=False` hangs up
    after the second event (the floor: what follows does not change its first-event time)."""
    started = time.perf_counter()
    stamps: list[float] = []
    done = False
    kept = bytearray()
    pending = b""
    with client.stream("POST", url, json=body, headers=headers) as response:
        for chunk in response.iter_raw():
            now = time.perf_counter()
            kept += chunk
            *complete, pending = (pending + chunk).replace(b"\r\n", b"\n").split(b"\n\n")
            for event in complete:
                data = [line for line in event.split(b"\n") if line.startswith(b"data:")]
                if data:
                    stamps.append(now)
                    done = data[-1].strip() == b"data: [DONE]"
            if not whole and len(stamps) >= 2:
                break
        end = time.perf_counter()
        status, cache = response.status_code, response.headers.get("x-cache")
    first = stamps[0] if stamps else None
    second = stamps[1] if len(stamps) > 1 else None
    return Streamed(started, first, second, end, len(stamps), done, status, cache, bytes(kept))


def stream_body(text: str) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": text}], "stream": True}


def caller_headers(caller_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {caller_key}"} if caller_key else {}


@contextlib.contextmanager
def paced(emulator: Any, events: int, gap_s: float) -> Iterator[None]:
    """The emulator writes streams of `events` events (role, words, finish), `gap_s` apart, then [DONE]."""
    previous = emulator.stream_delay, emulator.answer_words
    emulator.stream_delay, emulator.answer_words = gap_s, max(1, events - 2)
    try:
        yield
    finally:
        emulator.stream_delay, emulator.answer_words = previous


# --- 9: first event of a streamed miss, and where the time goes ------------------------------------------------

# The steps of a streamed miss, in order; their medians add up to the first-event time through the gateway.
PHASES = (
    ("http_in", "HTTP in: uvicorn, LocalGateway (key check, adapter headers), Starlette, body, worker thread"),
    ("lookup", "cache lookup (`service.look_up`: key + GetItem)"),
    ("validate", "validation (`service.validate`, pydantic)"),
    ("budget", "budget reservation (`quota.Spending`)"),
    ("other", "the rest of `completion_stream` before Mistral (dialect, model check, canonical form, metrics)"),
    ("open", "Mistral's stream opened (`upstream.open_stream`: SDK request to the 200)"),
    ("first_read", "first event read from Mistral's body by the reader thread"),
    ("out", "first event to the caller (queue, worker thread hop, event loop, uvicorn, loopback, client)"),
)


class Marks:
    """perf_counter() stamps of one request's steps, set by wrappers around the gateway's functions."""

    def __init__(self) -> None:
        self.current: dict[str, float] = {}

    def begin(self) -> dict[str, float]:
        self.current = {}
        return self.current

    def first(self, name: str) -> None:
        self.current.setdefault(name, time.perf_counter())


@contextlib.contextmanager
def phase_marks() -> Iterator[Marks]:
    """Wraps the steps of `streaming.completion_stream` (module attributes, looked up at each call) with
    perf_counter() stamps: a few microseconds per request. Everything is put back afterwards."""
    from mistral_gateway import quota, service, streaming, upstream

    marks = Marks()
    patched: list[tuple[Any, str, Any]] = []

    def wrap(owner: Any, name: str, label: str) -> None:
        original = getattr(owner, name)

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            marks.first(f"{label}_start")
            try:
                return original(*args, **kwargs)
            finally:
                marks.first(f"{label}_end")

        patched.append((owner, name, original))
        setattr(owner, name, timed)

    wrap(streaming, "completion_stream", "stream")
    wrap(service, "look_up", "lookup")
    wrap(service, "validate", "validate")
    wrap(quota, "Spending", "budget")
    wrap(upstream, "open_stream", "open")
    original_forward = streaming.LiveStream._forward

    def forward(self: Any, event: bytes, payload: str | None) -> None:
        marks.first("first_forward")
        original_forward(self, event, payload)

    patched.append((streaming.LiveStream, "_forward", original_forward))
    streaming.LiveStream._forward = forward  # type: ignore[method-assign]
    try:
        yield marks
    finally:
        for owner, name, original in reversed(patched):
            setattr(owner, name, original)


def phases_of(marks: dict[str, float], sent: float, first: float) -> dict[str, float]:
    """One request's steps in ms; they add up to `first - sent`."""
    took = {name: marks[f"{name}_end"] - marks[f"{name}_start"] for name in ("lookup", "validate", "budget")}
    before_open = marks["open_start"] - marks["stream_start"]
    seconds = {
        "http_in": marks["stream_start"] - sent,
        **took,
        "other": before_open - sum(took.values()),
        "open": marks["open_end"] - marks["open_start"],
        "first_read": marks["first_forward"] - marks["open_end"],
        "out": first - marks["first_forward"],
    }
    return {name: value * 1000 for name, value in seconds.items()}


@dataclass(frozen=True)
class StreamedMiss:
    gateway_first: Stats  # request sent -> first `data:` event, through the gateway
    floor_first: Stats  # the same, straight from the emulator
    overhead: Stats  # gateway_first - floor_first, pair by pair
    gateway_second: Stats  # -> the second event (the first carrying a token)
    floor_second: Stats
    gateway_total: Stats  # -> the end of the answer, through the gateway
    events: int  # data events the gateway forwarded per answer ([DONE] included)
    phases: dict[str, Stats]  # where the gateway's first-event time goes
    log_ttft: Stats  # what the "request served" line says (completion_stream entered -> first event forwarded)
    answer_s: float  # the emulator's own writing time for one answer: (events - 1) * gap


def streamed_miss(
    gateway_url: str,
    caller_key: str | None,
    emulator: Any,
    nonce: str,
    iterations: int = STREAM_ITERATIONS,
    *,
    events: int = STREAM_EVENTS,
    gap_s: float = STREAM_GAP_S,
    warmup: int = STREAM_WARMUP,
) -> StreamedMiss:
    """Warm streamed misses through the gateway, each followed by the same stream straight from the emulator
    (the floor), while the emulator writes `events` events `gap_s` apart."""
    client = http_client()
    direct_headers = {"Authorization": f"Bearer {emulator.api_key}"} if emulator.api_key else {}
    samples: dict[str, list[float]] = {}
    phase_samples: dict[str, list[float]] = {name: [] for name, _ in PHASES}
    forwarded: set[int] = set()
    try:
        with paced(emulator, events, gap_s), phase_marks() as marks:
            for i in range(-warmup, iterations):
                current = marks.begin()
                body = stream_body(f"streamed miss {nonce} {i}")
                through = read_stream(client, gateway_url + CHAT_PATH, body, caller_headers(caller_key))
                if through.status != 200 or through.cache != "MISS" or not through.done:
                    raise RuntimeError(f"streamed miss: {through.status} {through.cache}: {through.body[-300:]!r}")
                floor = read_stream(
                    client, emulator.url + CHAT_PATH, stream_body(f"streamed floor {nonce} {i}"), direct_headers,
                    whole=False,
                )  # fmt: skip
                if i < 0:
                    continue
                assert through.first is not None
                values = {
                    "gateway_first": through.first_ms,
                    "floor_first": floor.first_ms,
                    "overhead": through.first_ms - floor.first_ms,
                    "gateway_second": through.second_ms,
                    "floor_second": floor.second_ms,
                    "gateway_total": through.total_ms,
                    "log_ttft": (current["first_forward"] - current["stream_start"]) * 1000,
                }
                for name, value in values.items():
                    samples.setdefault(name, []).append(value)
                for name, value in phases_of(current, through.sent, through.first).items():
                    phase_samples[name].append(value)
                forwarded.add(through.events)
    finally:
        client.close()
    if len(forwarded) != 1:
        raise RuntimeError(f"the gateway forwarded different numbers of events: {sorted(forwarded)}")
    return StreamedMiss(
        **{name: stats(values) for name, values in samples.items()},
        events=forwarded.pop(),
        phases={name: stats(values) for name, values in phase_samples.items()},
        answer_s=(events - 1) * gap_s,
    )


# --- 10: a cached stream replayed -------------------------------------------------------------------------------


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
    iterations: int = REPLAY_ITERATIONS,
    *,
    events: int = STREAM_EVENTS,
    warmup: int = WARMUP_ITERATIONS,
) -> Replay:
    """A stored stream (a miss of `events` events, unpaced) asked again and again, each time followed by the
    floor: a bare Starlette app under uvicorn doing one GetItem of the same item and answering the same bytes."""
    from gateway_dev.asgi import BackgroundServer

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


def cache_keys(table: str, endpoint_url: str | None = None) -> set[str]:
    import boto3

    client = boto3.session.Session().client("dynamodb", endpoint_url=endpoint_url)
    pages = client.get_paginator("scan").paginate(TableName=table, ProjectionExpression="pk")
    return {item["pk"]["S"] for page in pages for item in page["Items"]}


# --- 11: the streaming function's cold start ----------------------------------------------------------------------


@dataclass(frozen=True)
class ServerRun:
    """One fresh uvicorn process: spawn -> /ready answers 200 -> one request answered (ms from spawn)."""

    ready_ms: float
    answered_ms: float
    first_event_ms: float
    status: int
    cache: str | None
    stderr: str

    @property
    def request_ms(self) -> float:
        return self.answered_ms - self.ready_ms


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def serve_once(
    app_dir: Path, env: dict[str, str], body: dict[str, Any], headers: dict[str, str], **extra: str
) -> ServerRun:
    """Start `app_dir`'s `app:app` with run.sh, as the Web Adapter does (the task root as working directory,
    `python` this interpreter), ask /ready every few ms until it answers (the adapter's readiness check), send
    one request, read its answer to the end, stop the process."""
    port = free_port()
    launch_env = {
        **env,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        "LAMBDA_TASK_ROOT": str(app_dir),
        "AWS_LWA_PORT": str(port),
        **extra,
    }
    client = http_client()
    with tempfile.TemporaryFile() as errors:
        started = time.perf_counter()
        process = subprocess.Popen(
            ["bash", str(LAUNCHER)], cwd=app_dir, env=launch_env, stdout=subprocess.DEVNULL, stderr=errors
        )
        try:
            ready = wait_ready(port, process, started)
            answer = read_stream(client, f"http://127.0.0.1:{port}{CHAT_PATH}", body, headers)
        except Exception as error:
            errors.seek(0)
            raise RuntimeError(f"{app_dir}/app.py did not answer: {error}\n{errors.read().decode()[-3000:]}") from error
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            client.close()
        errors.seek(0)
        stderr = errors.read().decode(errors="replace")
    first = answer.first if answer.first is not None else answer.end
    return ServerRun(
        (ready - started) * 1000,
        (answer.end - started) * 1000,
        (first - started) * 1000,
        answer.status,
        answer.cache,
        stderr,
    )


def wait_ready(port: int, process: subprocess.Popen[bytes], started: float, timeout_s: float = 60.0) -> float:
    while time.perf_counter() - started < timeout_s:
        if process.poll() is not None:
            raise RuntimeError(f"the process exited ({process.returncode}) before it was ready")
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            connection.request("GET", "/ready")
            if connection.getresponse().status == 200:
                return time.perf_counter()
        except OSError:
            pass
        finally:
            connection.close()
        time.sleep(READY_POLL_S)
    raise RuntimeError(f"not ready after {timeout_s:.0f} s")


def adapter_headers(key_id: str | None) -> dict[str, str]:
    """What the Lambda Web Adapter adds to an invocation for the app (as gateway_dev.asgi.LocalGateway does)."""
    from gateway_dev.apigw import proxy_event

    context = proxy_event("POST", CHAT_PATH, resource=CHAT_PATH, api_key_id=key_id)["requestContext"]
    lambda_context = {
        "request_id": str(uuid.uuid4()),
        "deadline": int(time.time() * 1000) + 900_000,
        "invoked_function_arn": "arn:aws:lambda:us-east-1:123456789012:function:bench-stream",
        "env_config": {"function_name": "bench-stream", "memory": 512},
    }
    return {
        "content-type": "application/json",
        "x-amzn-request-context": json.dumps(context),
        "x-amzn-lambda-context": json.dumps(lambda_context),
        "x-amzn-trace-id": f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Sampled=0",
    }


def stream_function_env(template: Template, base: dict[str, str]) -> dict[str, str]:
    """The streaming function's environment (template) over `base`, which keeps the local endpoints."""
    env = {**base, **template.function_environment("StreamFunction")}
    for name in ("MISTRAL_SERVER_URL", "AWS_ENDPOINT_URL"):
        if name in base:
            env[name] = base[name]
    return env


@dataclass(frozen=True)
class StreamCold:
    floor: list[ServerRun]
    hit: list[ServerRun]
    miss: list[ServerRun]
    hit_profile: ImportProfile | None = None
    runs: int = 0


def stream_cold_starts(
    template: Template,
    env: dict[str, str],
    table: str,
    nonce: str,
    runs: int = STREAM_COLD_RUNS,
    *,
    warmup: bool = True,
    profile: bool = True,
    floor_dir: Path = FLOOR_APP_DIR,
) -> StreamCold:
    """Fresh processes, alternating floor, cache hit and miss (all streamed requests). A first process stores
    the answer the hits replay; with `warmup`, one uncounted round then writes the bytecode (as bench.py's cold
    starts do)."""
    env = stream_function_env(template, env)
    endpoint = env.get("AWS_ENDPOINT_URL")
    headers = adapter_headers(CALLER_ID)
    hit_body = stream_body(f"cold streamed question {nonce}")
    floor_dir.mkdir(parents=True, exist_ok=True)
    (floor_dir / "app.py").write_text(FLOOR_APP)

    def stream_app(body: dict[str, Any], **extra: str) -> ServerRun:
        return serve_once(STREAM_APP_DIR, env, body, headers, **extra)

    before = cache_keys(table, endpoint)
    stored = stream_app(hit_body)  # a miss that stores the answer the hits replay
    (key,) = cache_keys(table, endpoint) - before
    if stored.status != 200 or stored.cache != "MISS":
        raise RuntimeError(f"cold stream priming answered {stored.status} {stored.cache}")
    floor_env = {**env, "BENCH_FLOOR_KEY": key, "CACHE_TABLE_NAME": table}
    results: dict[str, list[ServerRun]] = {"floor": [], "hit": [], "miss": []}
    for run in range(-1 if warmup else 0, runs):
        progress(f"streaming function cold starts, round {run + 1} of {runs}")
        round_runs = {
            "floor": serve_once(floor_dir, floor_env, {}, headers),
            "hit": stream_app(hit_body),
            "miss": stream_app(stream_body(f"cold streamed miss {nonce} {run}")),
        }
        if run >= 0:
            for name, result in round_runs.items():
                results[name].append(result)
    expected = {"hit": "HIT", "miss": "MISS"}
    for name, cache in expected.items():
        for result in results[name]:
            if result.status != 200 or result.cache != cache:
                raise RuntimeError(f"cold streamed {name} answered {result.status} {result.cache}")
    if any(result.status != 200 for result in results["floor"]):
        raise RuntimeError("the streaming cold-start floor failed")
    hit_profile = None
    if profile:
        profiled = stream_app(hit_body, PYTHONPROFILEIMPORTTIME="1")  # `python -X importtime`
        hit_profile = import_profile(ChildRun(profiled.answered_ms, {}, 0, profiled.stderr))
    return StreamCold(results["floor"], results["hit"], results["miss"], hit_profile, runs=runs)


# What each step waits on, for the sentence about the tail.
WAITS_ON = {
    "lookup": "a GetItem from moto",
    "open": "a request to the emulator",
    "first_read": "the emulator's first write",
}


def kept_text(replay: Replay) -> str:
    """Whether a kept-alive connection costs the gateway something the bare app does not pay too."""
    hit, floor = replay.hit_first_kept.median, replay.floor_first_kept.median
    fresh_hit, fresh_floor = replay.hit_first.median, replay.floor_first.median
    if floor > fresh_floor + 10 and hit > fresh_hit + 10:
        return (
            f"both pay about the same extra ({ms(hit - fresh_hit)} and {ms(floor - fresh_floor)}), so it is the "
            "local server, not the gateway's code. `BackgroundServer` (and `make serve`) hand uvicorn a socket they "
            "bound themselves, without `TCP_NODELAY`: Nagle's algorithm then holds the answer's second write until "
            "the client's delayed acknowledgement, about 40 ms, on every request but the first of a connection. "
            "`python -m uvicorn`, as `run.sh` starts it in Lambda, binds its own socket and does not show it "
            "(checked by hand, not in this run); setting `TCP_NODELAY` on the pre-bound socket removes it. The "
            "figures here use fresh connections to keep it out of both sides; figure 8's SDK calls pay it."
        )
    return f"a difference of {ms(hit - floor)}, against {ms(fresh_hit - fresh_floor)} with fresh connections."


def target_text(miss: StreamedMiss) -> str:
    """The first-event overhead against the target, median and tail, with the steps that make the tail."""
    median, p95 = miss.overhead.median, miss.overhead.p95
    side = "under" if median <= TARGET_TTFT_OVERHEAD_MS else "over"
    tail = sorted(PHASES, key=lambda phase: -(miss.phases[phase[0]].p95 - miss.phases[phase[0]].median))[:2]
    tail_text = " and ".join(
        f"{text.split(' (')[0]} (p95 {ms(miss.phases[name].p95)}; waits on "
        f"{WAITS_ON.get(name, 'this process only: CPU and the GIL')})"
        for name, text in tail
    )
    return (
        f"Against the target: the median overhead, {ms(median)}, is {side} the {TARGET_TTFT_OVERHEAD_MS:.0f} ms "
        f"LiteLLM adds; the p95, {ms(p95)}, is {'under' if p95 <= TARGET_TTFT_OVERHEAD_MS else 'over'} it "
        f"(with {len(miss.overhead.samples)} samples the p95 is close to the slowest). The steps with the longest "
        f"tail: {tail_text}. moto, the emulator, the gateway and the client share this process and two busy cores."
    )


def significant(profile: list[tuple[str, float]]) -> list[tuple[str, float]]:
    return [(name, cost) for name, cost in profile if cost >= 1.0]


def server_stats(runs: list[ServerRun], attribute: str) -> Stats:
    return stats([getattr(run, attribute) for run in runs])


# --- the whole streaming part of a run ----------------------------------------------------------------------------


@dataclass(frozen=True)
class StreamFigures:
    miss: StreamedMiss
    replay: Replay
    cold: StreamCold
    seconds: dict[str, float] = field(default_factory=dict)  # how long each part took


def measure(stack: Any) -> StreamFigures:
    """Figures 9-11 on bench.py's stack (moto server, emulator, the function's environment in os.environ)."""
    from gateway_dev.asgi import BackgroundServer, LocalGateway
    from gateway_dev.bench import captured_output
    from gateway_dev.bridge import ApiBridge

    seconds: dict[str, float] = {}
    server = BackgroundServer(LocalGateway(ApiBridge(stack.template, api_keys={CALLER_KEY: CALLER_ID})))
    try:
        with captured_output():
            progress(f"streamed misses through the local HTTP gateway, {STREAM_ITERATIONS} x a 2 s answer")
            started = time.perf_counter()
            miss = streamed_miss(server.url, CALLER_KEY, stack.emulator, stack.nonce)
            seconds["miss"] = time.perf_counter() - started
            progress(f"cached stream replays, {REPLAY_ITERATIONS}")
            started = time.perf_counter()
            replay = stream_replay(server.url, CALLER_KEY, stack.emulator, stack.table, stack.nonce)
            seconds["replay"] = time.perf_counter() - started
    finally:
        server.stop()
    started = time.perf_counter()
    cold = stream_cold_starts(stack.template, stack.child_env(), stack.table, stack.nonce)
    seconds["cold"] = time.perf_counter() - started
    return StreamFigures(miss, replay, cold, seconds)


# --- rows, results.json and the doc section -----------------------------------------------------------------------


def rows(figures: StreamFigures) -> list[Row]:
    miss, replay, cold = figures.miss, figures.replay, figures.cold
    overhead = miss.overhead
    floor_text = f"{STREAM_EVENTS} events {STREAM_GAP_S * 1000:.0f} ms apart"
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
    ]


def results(figures: StreamFigures) -> dict[str, Any]:
    miss, replay, cold = figures.miss, figures.replay, figures.cold

    def servers(runs: list[ServerRun]) -> dict[str, Any]:
        return {
            "ready_ms": server_stats(runs, "ready_ms").summary(),
            "answered_ms": server_stats(runs, "answered_ms").summary(),
            "first_event_ms": server_stats(runs, "first_event_ms").summary(),
            "statuses": [[run.status, run.cache] for run in runs],
        }

    return {
        "paced_answer": {"events": STREAM_EVENTS, "gap_ms": STREAM_GAP_S * 1000},
        "target_ttft_overhead_ms": TARGET_TTFT_OVERHEAD_MS,
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
            "hit_importtime_ms": cold.hit_profile.__dict__ if cold.hit_profile else None,
        },
        "seconds": figures.seconds,
    }


def doc_section(figures: StreamFigures, buffered_cold_hit_ms: float, buffered_floor_ms: float) -> str:
    miss, replay, cold = figures.miss, figures.replay, figures.cold
    phase_rows = "\n".join(
        f"| {text} | {ms(miss.phases[name].median)} | {ms(miss.phases[name].p95)} |" for name, text in PHASES
    )
    phase_sum = sum(miss.phases[name].median for name, _ in PHASES)
    upstream_part = miss.phases["open"].median + miss.phases["first_read"].median
    ours = phase_sum - upstream_part
    costliest = sorted(
        ((name, text) for name, text in PHASES if name not in ("open", "first_read")),
        key=lambda item: -miss.phases[item[0]].median,
    )[:3]
    costliest_text = "; ".join(f"{text.split(' (')[0]} {ms(miss.phases[name].median)}" for name, text in costliest)
    floor, hit, cold_miss = cold.floor, cold.hit, cold.miss

    def cold_line(label: str, runs: list[ServerRun]) -> str:
        ready, answered = server_stats(runs, "ready_ms"), server_stats(runs, "answered_ms")
        request = server_stats(runs, "request_ms")
        return f"| {label} | {ms(ready.median)} | {ms(request.median)} | {ms(answered.median)} |"

    profile = ""
    if cold.hit_profile is not None:
        profile = (
            "\nCostliest imports of a cold streamed hit (`PYTHONPROFILEIMPORTTIME=1`, cumulative, uvicorn's "
            f"own included): {profile_text(significant(cold.hit_profile.top_level))}; inside them: "
            f"{profile_text(significant(cold.hit_profile.inside))}.\n"
        )
    same_bytes = "byte for byte the original stream" if replay.bytes_equal else "NOT the original bytes"
    return f"""
## Streaming (figures 9 to 11)

**How.** Everything runs in the benchmark's process except the cold starts: moto, the emulator, and the
gateway as `make serve` runs it (`BackgroundServer(LocalGateway(ApiBridge(template, api_keys=...)))`: uvicorn,
the caller-key check, the Web Adapter's headers, the streaming function's Starlette app). The client is httpx2,
a fresh connection per request on every side. They all share one GIL on a busy two-core machine, so medians
(and p95) are what to read; every figure has its floor measured in the same run, alternating with it.

- **9. Streamed miss.** The emulator writes each answer as {STREAM_EVENTS} events {STREAM_GAP_S * 1000:.0f} ms apart
  (a {miss.answer_s:.2f} s answer; the first event, the role, comes at once). {STREAM_ITERATIONS} new prompts
  (after {STREAM_WARMUP} uncounted), each read to the end through the gateway, then the floor: the same request
  straight to the emulator with httpx2, which hangs up after the second event. Time to first event is from
  sending the request to the first `data:` event received; the figure is the difference per pair. The target,
  the {TARGET_TTFT_OVERHEAD_MS:.0f} ms the LiteLLM proxy adds in the same conditions, is the figure measured for
  issue 12; LiteLLM is not run here.
- **Where the time goes.** During the same requests, `perf_counter()` stamps around the steps of
  `streaming.completion_stream` (wrappers put on `service.look_up`, `service.validate`, `quota.Spending`,
  `upstream.open_stream` and `LiveStream._forward` for the run, a few microseconds each). The log line's
  `time_to_first_token_ms` is the span from entering `completion_stream` to the first event forwarded: here
  {spread(miss.log_ttft)}.
- **10. Replay.** One stream of {STREAM_EVENTS} events is stored (a miss, unpaced), then asked
  {REPLAY_ITERATIONS} times (after {WARMUP_ITERATIONS} uncounted), each followed by the floor: a bare Starlette
  app on the same kind of uvicorn server (`BackgroundServer`) doing one GetItem of the same item and answering
  the same bytes. It stands for the least a replay over this path can do: one HTTP exchange and one DynamoDB read.
- **11. Cold start.** A fresh process per run started by `functions/stream/run.sh`, the Web Adapter's entry
  point (`python -m uvicorn app:app`, here with `python` this interpreter and the task root as working
  directory), with the streaming function's environment from the template; the parent asks `GET /ready` every
  {READY_POLL_S * 1000:.0f} ms (the adapter's readiness check) and then sends one streamed request with the
  adapter's headers, read to the end (the emulator unpaced). Timed from spawn. Floor: the same launcher serving
  a bare Starlette app (`.bench/stream-floor/app.py`) that creates a boto3 client at import and does one GetItem
  of the same item per request. {cold.runs} runs each, alternating, after one
  uncounted round that writes the bytecode (`.bench/pycache`) and stores the answer the hits replay.

### 9. First event of a streamed miss

| | through the gateway | straight from the emulator | difference, pair by pair |
|---|---|---|---|
| first `data:` event | {spread(miss.gateway_first)} | {spread(miss.floor_first)} | {spread(miss.overhead)} |
| second event (first token) | {spread(miss.gateway_second)} | {spread(miss.floor_second)} \
| {ms(miss.gateway_second.median - miss.floor_second.median)} (of medians) |
| whole answer | {spread(miss.gateway_total)} | ≥ {miss.answer_s * 1000:,.0f} ms by construction | - |

The gateway forwarded {miss.events} `data:` events per answer ({STREAM_EVENTS} and `[DONE]`), the first one
{ms(miss.gateway_total.median - miss.gateway_first.median)} before the last: the answer streams, it is not
buffered.

{target_text(miss)}

Where the first-event time through the gateway goes (median and p95 of each step over the same
{STREAM_ITERATIONS} requests; the medians add up to {ms(phase_sum)}, against a median first event of
{ms(miss.gateway_first.median)}):

| step | median | p95 |
|---|---|---|
{phase_rows}

Mistral's part (stream opened, first event read: {ms(upstream_part)}) compares with the floor's whole first
event ({ms(miss.floor_first.median)}): the difference, {ms(upstream_part - miss.floor_first.median)}, is what
the SDK (and the gateway's retry wrapper around it) adds to a bare httpx2 request. The rest, {ms(ours)}, is the
gateway's own; its largest steps: {costliest_text}.

### 10. A cached stream replayed

| | first `data:` event | whole answer |
|---|---|---|
| cache hit through the gateway | {spread(replay.hit_first)} | {spread(replay.hit_total)} |
| floor: bare Starlette app, one GetItem, the same bytes | {spread(replay.floor_first)} | - |
| cache hit, one kept-alive connection, back to back | {spread(replay.hit_first_kept)} | - |
| floor, one kept-alive connection, back to back | {spread(replay.floor_first_kept)} | - |

The replay is {replay.events} `data:` events, {same_bytes} ({replay.original_events} events when it was a miss).
A hit is answered in one piece (all its events are known), so its first event and its end arrive together.

Every figure above uses a fresh connection per request. Over one kept-alive connection (what an SDK client
does, and what figure 8's SDK calls use), the hit's first event takes {ms(replay.hit_first_kept.median)} and the
bare floor's {ms(replay.floor_first_kept.median)}: {kept_text(replay)}

### 11. The streaming function's cold start

| process, spawn to | /ready answers | first request | answered |
|---|---|---|---|
{cold_line("floor: run.sh + bare Starlette + boto3 GetItem", floor)}
{cold_line("streaming function, cache hit", hit)}
{cold_line("streaming function, miss", cold_miss)}

For comparison, the buffered function's cold hit (figure 1, spawn to exit, no web server: Lambda's runtime
calls the handler): {ms(buffered_cold_hit_ms)} against its floor's {ms(buffered_floor_ms)},
{buffered_cold_hit_ms / buffered_floor_ms:.2f}{X}; the streaming function's hit:
{server_stats(hit, "answered_ms").median / server_stats(floor, "answered_ms").median:.2f}{X} its floor. Compare
ratios, not times: the two were measured at different moments of the run, under whatever load the machine had.
{profile}"""
