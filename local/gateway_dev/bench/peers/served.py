"""The gateway as `make serve` runs it, in a process of its own (with moto in another, moto_process.py), for the
side-by-side figures: the peer proxy is a process of its own too, so neither shares a GIL with the benchmark's
client threads (50 at once in the concurrent figures) or with the emulator both call."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from gateway_dev.bench.processes import free_port, stop, wait_until_answering
from gateway_dev.bench.settings import CALLER_KEY, CHAT_PATH
from gateway_dev.bench.stack import Stack, chat_body
from gateway_dev.runner import spend_delivery


@dataclass
class ServedGateway:
    process: subprocess.Popen[bytes]
    url: str

    def stop(self) -> None:
        stop(self.process, timeout_s=30)  # SIGTERM: serve.py stops uvicorn, then moto's process (up to 10 s)


def serve(stack: Stack, log: Path, timeout_s: float = 120.0) -> ServedGateway:
    """`python -m gateway_dev.runner.serve` with the bench's caller key, pointed at the run's emulator (as a
    custom upstream, with the emulator's key), once it answers a chat."""
    import httpx2

    port = free_port()
    # The bench set the function's variables in its own environment; serve sets them from the template itself.
    bench_set = set(stack.template.function_environment("ApiFunction")) | {"AWS_ENDPOINT_URL"}
    environment = {name: value for name, value in os.environ.items() if name not in bench_set}
    environment |= {
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "GATEWAY_API_KEY": CALLER_KEY,
        "MISTRAL_API_KEY": stack.mistral_key,  # the emulator's key, so serve calls it as a custom upstream
        "MISTRAL_SERVER_URL": stack.emulator.url,
        spend_delivery.OFF: "1",  # the request path is what is timed, as in the rest of the bench
    }
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway_dev.runner.serve"], stdout=sink, stderr=subprocess.STDOUT, env=environment
        )
    url = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {CALLER_KEY}"}

    def answers() -> bool:
        ready = httpx2.post(url + CHAT_PATH, json=chat_body("served ready?"), headers=headers, trust_env=False)
        return ready.status_code == 200

    wait_until_answering(process, answers, what="make serve", log=log, timeout_s=timeout_s)
    return ServedGateway(process, url)
