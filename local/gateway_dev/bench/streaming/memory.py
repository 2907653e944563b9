"""Figure 12: the streaming function's memory against a stream's length and against callers who stop reading.

A fresh uvicorn process of the streaming function (run.sh, as the Lambda Web Adapter starts it), Mistral played by
the emulator at full speed. Two processes: one streams a long answer (`Sizes.memory_stream_tokens`, 100k tokens
in a full run) to a client that reads it all; the other opens `Sizes.stalled_readers` streams of that length whose
clients read the first bytes and then stop reading without hanging up. Each process's peak RSS (VmHWM) is read
from /proc, against its own peak after one short stream (the baseline): memory flat in a stream's length shows as
a small difference, whatever the length.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway_dev.bench.processes import free_port, rss_kb, stop
from gateway_dev.bench.settings import CALLER_ID, CHAT_PATH, LAUNCHER, MB, STREAM_APP_DIR
from gateway_dev.bench.streaming.client import http_client, read_stream, stream_body
from gateway_dev.bench.streaming.cold import stream_function_env, wait_ready
from gateway_dev.cloud.template import Template

SETTLE_S = 1.0  # a stalled process counts as settled when its RSS has not grown for this long
STALL_MAX_S = 60.0


@dataclass(frozen=True)
class StreamMemory:
    tokens: int  # the answer's length in events (about a token each)
    readers: int  # stalled readers at once
    baseline_mb: float  # peak RSS after one short stream (the long-stream process)
    long_mb: float  # ... after the long stream, read whole
    long_events: int  # events the client received
    stalled_baseline_mb: float  # peak RSS after one short stream (the stalled-readers process)
    stalled_mb: float  # ... with the readers stalled
    stalled_seconds: float  # how long the readers stalled before the peak was read

    @property
    def long_growth_mb(self) -> float:
        return self.long_mb - self.baseline_mb

    @property
    def stalled_growth_mb(self) -> float:
        return self.stalled_mb - self.stalled_baseline_mb


class StreamServer:
    """The streaming function in a fresh process, as the Web Adapter starts it."""

    def __init__(self, env: dict[str, str]) -> None:
        self.port = free_port()
        launch_env = {
            **env,
            "PATH": f"{Path(sys.executable).parent}:{env.get('PATH', '')}",
            "LAMBDA_TASK_ROOT": str(STREAM_APP_DIR),
            "AWS_LWA_PORT": str(self.port),
        }
        started = time.perf_counter()
        quiet = subprocess.DEVNULL
        self.process = subprocess.Popen(
            ["bash", str(LAUNCHER)], cwd=STREAM_APP_DIR, env=launch_env, stdout=quiet, stderr=quiet
        )
        wait_ready(self.port, self.process, started)
        self.url = f"http://127.0.0.1:{self.port}{CHAT_PATH}"

    def peak_mb(self) -> float:
        return rss_kb(self.process.pid) * 1024 / MB

    def rss_mb(self) -> float:
        return rss_kb(self.process.pid, "VmRSS") * 1024 / MB

    def stop(self) -> None:
        stop(self.process)


def stream_memory(
    template: Template, env: dict[str, str], emulator: Any, nonce: str, *, tokens: int, readers: int
) -> StreamMemory:
    from gateway_dev.runner.asgi import adapter_headers

    env = stream_function_env(template, env)
    headers = {"content-type": "application/json", **adapter_headers("POST", CHAT_PATH, CALLER_ID)}
    previous = emulator.answer_words, emulator.stream_delay
    emulator.stream_delay = 0.0
    try:
        emulator.answer_words = 20
        long_server = StreamServer(env)
        try:
            client = http_client()
            read_stream(client, long_server.url, stream_body(f"memory baseline {nonce}"), headers)
            baseline = long_server.peak_mb()
            emulator.answer_words = tokens
            answer = read_stream(client, long_server.url, stream_body(f"memory long stream {nonce}"), headers)
            if answer.status != 200 or not answer.done:
                raise RuntimeError(f"the long stream answered {answer.status}, done={answer.done}")
            long_peak = long_server.peak_mb()
            client.close()
        finally:
            long_server.stop()

        emulator.answer_words = 20
        stalled_server = StreamServer(env)
        try:
            client = http_client()
            read_stream(client, stalled_server.url, stream_body(f"memory stalled baseline {nonce}"), headers)
            client.close()
            stalled_baseline = stalled_server.peak_mb()
            emulator.answer_words = tokens
            stalled, seconds = stall(stalled_server, readers, headers, nonce)
        finally:
            stalled_server.stop()
    finally:
        emulator.answer_words, emulator.stream_delay = previous
    return StreamMemory(
        tokens, readers, baseline, long_peak, answer.events, stalled_baseline, stalled, seconds
    )  # fmt: skip


def stall(server: StreamServer, readers: int, headers: dict[str, str], nonce: str) -> tuple[float, float]:
    """`readers` streams whose clients read their first bytes, then stop reading (and keep the connection):
    the peak RSS once the process has stopped growing, and how long that took."""
    connections = []
    try:
        for reader in range(readers):
            body = json.dumps(stream_body(f"memory stalled reader {nonce} {reader}")).encode()
            head = f"POST {CHAT_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n"
            head += "".join(f"{name}: {value}\r\n" for name, value in headers.items()) + "\r\n"
            connection = socket.create_connection(("127.0.0.1", server.port))
            connection.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a slow reader's small window
            connection.sendall(head.encode() + body)
            if not connection.recv(1024).startswith(b"HTTP/1.1 200"):
                raise RuntimeError("a stalled reader's stream did not start")
            connections.append(connection)
        started = last_change = time.perf_counter()
        last = server.rss_mb()
        while time.perf_counter() - last_change < SETTLE_S and time.perf_counter() - started < STALL_MAX_S:
            time.sleep(0.1)
            now = server.rss_mb()
            if now > last + 0.5:
                last, last_change = now, time.perf_counter()
        return server.peak_mb(), time.perf_counter() - started
    finally:
        for connection in connections:
            connection.close()
