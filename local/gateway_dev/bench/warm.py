"""Figures 3 and 4: a warm container's handler time on hits and misses, alternating with a floor in this process."""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gateway_dev.bench.stack import Stack, cache_status, captured_output, chat_body, chat_event, prime
from gateway_dev.bench.stats import Stats, stats


@dataclass(frozen=True)
class Warm:
    gateway: Stats  # until the response: what the caller waits for
    gateway_cpu: Stats  # CPU time of the handler's own thread (moto and the emulator run in other threads)
    floor: Stats
    log_bytes: float  # bytes of log lines + EMF metrics per request
    billed: Stats  # until the work after the response (a miss's store) is done too: what Lambda bills

    @property
    def ratio(self) -> float:
        return self.gateway.median / self.floor.median


def timed(call: Callable[[], Any]) -> tuple[float, float, Any]:
    cpu, started = time.thread_time(), time.perf_counter()
    value = call()
    return (time.perf_counter() - started) * 1000, (time.thread_time() - cpu) * 1000, value


def warm_hit(stack: Stack, function: Any, iterations: int, warmup: int) -> Warm:
    """A stored request, each invocation followed by a bare boto3 GetItem of the same item."""
    import boto3

    text = f"warm question {stack.nonce}"
    key = prime(stack, function, text)
    client = boto3.session.Session().client("dynamodb")

    def floor() -> Any:
        return client.get_item(TableName=stack.table, Key={"pk": {"S": key}})

    return alternate(function, lambda i: chat_event(text), "HIT", floor, iterations, warmup)


def warm_miss(stack: Stack, function: Any, label: str, iterations: int, warmup: int) -> Warm:
    """A new prompt each time, each followed by a bare SDK chat.complete + GetItem + PutItem of a stored-size item."""
    import boto3
    from mistralai.client import Mistral

    client = boto3.session.Session().client("dynamodb")
    sdk = Mistral(api_key=stack.mistral_key, server_url=stack.emulator.url)
    sample = sdk.chat.complete(**chat_body("sample answer"))
    stored = zlib.compress(sample.model_dump_json().encode(), 6)  # an answer as big as the gateway stores
    counter = iter(range(10**9))

    def floor() -> Any:
        i = next(counter)
        sdk.chat.complete(**chat_body(f"floor miss {label} {stack.nonce} {i}"))
        item_key = {"pk": {"S": f"floor-{label}-{stack.nonce}-{i}"}}
        client.get_item(TableName=stack.table, Key=item_key)
        return client.put_item(TableName=stack.table, Item={**item_key, "body": {"B": stored}})

    def event(i: int) -> dict[str, Any]:
        return chat_event(f"warm miss {label} {stack.nonce} {i}")

    return alternate(function, event, "MISS", floor, iterations, warmup)


def alternate(
    function: Any,
    event_for: Callable[[int], dict[str, Any]],
    expected: str,
    floor: Callable[[], Any],
    iterations: int,
    warmup: int,
) -> Warm:
    """Handler and floor one after the other, `iterations` times, after `warmup` uncounted rounds. The handler
    is timed to its response, then to the end of the work it left for after the response (billed)."""
    gateway_ms: list[float] = []
    billed_ms: list[float] = []
    cpu_ms: list[float] = []
    floor_ms: list[float] = []
    log_bytes = 0
    with captured_output() as sink:
        for i in range(-warmup, iterations):
            event = event_for(i)
            before = sink.bytes
            elapsed, cpu, result = timed(lambda event=event: function.invoke(event))  # type: ignore[misc]
            settled, _, _ = timed(function.settle)  # its store, after the response; the floor waits for it
            if cache_status(result) != expected:
                raise RuntimeError(f"expected {expected}, got {result.get('statusCode')} {cache_status(result)}")
            floor_elapsed, _, _ = timed(floor)
            if i >= 0:
                gateway_ms.append(elapsed)
                billed_ms.append(elapsed + settled)
                cpu_ms.append(cpu)
                floor_ms.append(floor_elapsed)
                log_bytes += sink.bytes - before
    return Warm(stats(gateway_ms), stats(cpu_ms), stats(floor_ms), log_bytes / iterations, stats(billed_ms))
