"""Figure 11: the streaming function's cold start. A fresh process started by `run.sh` (the Lambda Web Adapter's
entry point: `python -m uvicorn app:app`), polled on /ready as the adapter does, then one request; against the same
launcher serving a bare Starlette app (`children/stream_floor_app.py`) whose request does one boto3 GetItem."""

from __future__ import annotations

import http.client
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway_dev.bench.importtime import ImportProfile, import_profile
from gateway_dev.bench.processes import free_port, stop
from gateway_dev.bench.settings import CALLER_ID, CHAT_PATH, LAUNCHER, READY_POLL_S, STREAM_APP_DIR
from gateway_dev.bench.stack import cache_keys, progress
from gateway_dev.bench.stats import Stats, stats
from gateway_dev.bench.streaming.client import http_client, read_stream, stream_body
from gateway_dev.cloud.template import Template

# The floor app: a real module, copied where run.sh starts it as `app:app` (importing it would run it).
FLOOR_APP = Path(__file__).parent.parent / "children" / "stream_floor_app.py"


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
            stop(process)
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


def stream_cold_starts(
    template: Template,
    env: dict[str, str],
    table: str,
    nonce: str,
    runs: int,
    *,
    warmup: bool = True,
    profile: bool = True,
    floor_dir: Path,
) -> StreamCold:
    """Fresh processes, alternating floor, cache hit and miss (all streamed requests). A first process stores
    the answer the hits replay; with `warmup`, one uncounted round then writes the bytecode (as the buffered cold
    starts do)."""
    from gateway_dev.runner.asgi import adapter_headers

    env = stream_function_env(template, env)
    endpoint = env.get("AWS_ENDPOINT_URL")
    headers = {"content-type": "application/json", **adapter_headers("POST", CHAT_PATH, CALLER_ID)}
    hit_body = stream_body(f"cold streamed question {nonce}")
    floor_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(FLOOR_APP, floor_dir / "app.py")

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
        hit_profile = import_profile(profiled.stderr)
    return StreamCold(results["floor"], results["hit"], results["miss"], hit_profile)


def server_stats(runs: list[ServerRun], attribute: str) -> Stats:
    return stats(getattr(run, attribute) for run in runs)
