"""functions/stream/run.sh, the Web Adapter's entry point, starts the app and answers the readiness check."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_launcher_serves_the_app_on_the_adapters_port() -> None:
    port = free_port()
    function_dir = ROOT / "functions" / "stream"
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",  # `python` is this interpreter
        "LAMBDA_TASK_ROOT": str(function_dir),
        "AWS_LWA_PORT": str(port),
    }
    process = subprocess.Popen(
        ["bash", str(function_dir / "run.sh")], cwd=function_dir, env=env, start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        body = b""
        for _ in range(300):  # the adapter polls the same way until the app is ready
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=1) as response:
                    body = response.read()
                break
            except OSError:
                time.sleep(0.05)
        assert body == b"ready"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(10)
