"""The processes the benchmark starts and watches (the streaming function's server, the LiteLLM proxy, the gateway
under `make serve`): a free port for them, waiting until they answer, their memory from /proc, and stopping them."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def rss_kb(pid: int, field: str = "VmHWM") -> int:
    """A process's peak (VmHWM) or current (VmRSS) resident memory, in kB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for process {pid}")


def stop(process: subprocess.Popen[bytes], timeout_s: float = 10.0) -> None:
    """Terminate, then kill if it has not ended within `timeout_s`."""
    process.terminate()
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


def wait_until_answering(
    process: subprocess.Popen[bytes], answers: Callable[[], bool], *, what: str, log: Path, timeout_s: float
) -> float:
    """Seconds from now until `answers()` (an HTTP probe) is true; an exit or the timeout raises, naming the log."""
    import httpx2

    started = time.perf_counter()
    while time.perf_counter() - started < timeout_s:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited ({process.returncode}); see {log}")
        try:
            if answers():
                return time.perf_counter() - started
        except httpx2.TransportError:
            pass
        time.sleep(0.05)
    stop(process)
    raise RuntimeError(f"{what} did not answer within {timeout_s:.0f} s; see {log}")
