"""The local stack every figure runs on: moto with template.yaml's table and secret, the Mistral emulator, the
function's environment; and the requests and checks the measurements share."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway_dev.bench.children.common import response_headers
from gateway_dev.bench.settings import AWS_ENVIRONMENT, CALLER_ID, CHAT_PATH, MODEL, Paths
from gateway_dev.cloud.template import Template


def progress(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


@dataclass
class Stack:
    template: Template
    emulator: Any  # gateway_dev.emulator.server.MistralEmulator
    mistral_key: str
    table: str
    memory_mb: int
    stop_moto: Callable[[], None]
    paths: Paths
    nonce: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    def child_env(self, **extra: str) -> dict[str, str]:
        """Children keep bytecode under the work dir's pycache (written by the uncounted first round, then read)."""
        env = {**os.environ, "PYTHONPYCACHEPREFIX": str(self.paths.pycache), **extra}
        if "PYTHONDONTWRITEBYTECODE" not in extra:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
        return env

    def stop(self) -> None:
        self.emulator.stop()
        self.stop_moto()


def start_stack(paths: Paths) -> Stack:
    """moto (template's table and secret), the emulator, and the function's environment in os.environ."""
    import logging

    from gateway_dev.cloud.resources import create_resources
    from gateway_dev.emulator.server import MistralEmulator
    from gateway_dev.runner import spend_delivery
    from gateway_dev.runner.moto_process import start_moto

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the emulator's server: errors only
    os.environ.update(AWS_ENVIRONMENT)
    os.environ[spend_delivery.OFF] = "1"  # the request path is what is timed (spend_delivery.py says why)
    for name in ("AWS_PROFILE", "MISTRAL_API_KEY"):
        os.environ.pop(name, None)
    moto_url, stop_moto = start_moto()
    os.environ["AWS_ENDPOINT_URL"] = moto_url
    template = Template()
    key = "bench-mistral-key-" + uuid.uuid4().hex[:8]
    emulator = MistralEmulator(api_key=key).start()
    create_resources(template, mistral_api_key=key)
    os.environ.update(template.function_environment("ApiFunction"))
    os.environ["MISTRAL_SERVER_URL"] = emulator.url
    memory_mb = int(template.parameters["FunctionMemorySize"])
    return Stack(template, emulator, key, os.environ["CACHE_TABLE_NAME"], memory_mb, stop_moto, paths)


def child_command(module: str, *args: str, flags: tuple[str, ...] = ()) -> list[str]:
    """`python [flags] -m gateway_dev.bench.children.<module> args`."""
    return [sys.executable, *flags, "-m", f"gateway_dev.bench.children.{module}", *args]


def run_child(command: list[str], env: dict[str, str]) -> str:
    """A child command run to the end; returns its stderr."""
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        module = command[command.index("-m") + 1]
        raise RuntimeError(f"benchmark child {module} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done.stderr


def read_reports(path: Path) -> list[dict[str, Any]]:
    """The JSON lines the children appended to `path`; a child's error stops the run."""
    reports = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    for report in reports:
        if "error" in report:
            raise RuntimeError(f"benchmark child failed: {report['error']}")
    return reports


class CountingSink(io.TextIOBase):
    """Where the handler's log lines and EMF metrics go during a run: counted (CloudWatch bytes), not kept."""

    def __init__(self) -> None:
        self.bytes = 0

    def write(self, text: str) -> int:
        self.bytes += len(text.encode())
        return len(text)


@contextlib.contextmanager
def captured_output() -> Iterator[CountingSink]:
    from mistral_gateway.platform.observability import logger

    sink = CountingSink()
    handler = logger.registered_handler
    previous = handler.setStream(sink)  # type: ignore[attr-defined]
    try:
        with contextlib.redirect_stdout(sink):  # Powertools prints EMF metrics with print()
            yield sink
    finally:
        handler.setStream(previous)  # type: ignore[attr-defined]


@contextlib.contextmanager
def function_setting(name: str, value: str) -> Iterator[None]:
    """Run the warm container with one environment variable changed (settings are read once per container)."""
    from mistral_gateway.container import start

    previous = os.environ.get(name)
    os.environ[name] = value
    start()
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous
        start()


def chat_body(text: str, **fields: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": text}], **fields}


def chat_event(text: str) -> dict[str, Any]:
    from gateway_dev.cloud.apigw import proxy_event

    return proxy_event(
        "POST",
        CHAT_PATH,
        resource=CHAT_PATH,
        headers=[("Content-Type", "application/json")],
        body=json.dumps(chat_body(text)),
        api_key_id=CALLER_ID,
    )


def cache_status(result: dict[str, Any]) -> str | None:
    return response_headers(result).get("x-cache")


def cache_keys(table: str, endpoint_url: str | None = None) -> set[str]:
    import boto3

    client = boto3.session.Session().client("dynamodb", endpoint_url=endpoint_url)
    pages = client.get_paginator("scan").paginate(TableName=table, ProjectionExpression="pk")
    return {item["pk"]["S"] for page in pages for item in page["Items"]}


def prime(stack: Stack, function: Any, text: str) -> str:
    """Answer `text` once (a miss, now stored) and return the cache key the gateway stored it under."""
    before = cache_keys(stack.table)
    with captured_output():
        first = function.invoke(chat_event(text))
        second = function.invoke(chat_event(text))
    if (cache_status(first), cache_status(second)) != ("MISS", "HIT"):
        raise RuntimeError(f"priming failed: {cache_status(first)}, then {cache_status(second)}")
    (key,) = cache_keys(stack.table) - before
    return key
