"""Figure 14: what the ownership ledger (AccountRoutes=owned) adds to an owned read and to a create.

A warm ApiFunction answers `GET /v1/files/{id}` (the caller's own file: one BatchGetItem before Mistral is
called) and `POST /v1/files` (a multipart upload: one conditional PutItem before the answer leaves), each
`iterations` times. The ledger's DynamoDB calls are counted and timed where they all pass (Ledger._call), so the
figures are the ledger's own: its round trips per request (target: one) and the milliseconds they took, beside
the handler's whole time. The cost table prices a million such requests from these times and the ledger's
capacity units (cost.owned_costs).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from gateway_dev.bench.stack import Stack, captured_output
from gateway_dev.bench.stats import Stats, stats

CALLER = "bench-ledger-caller"
BOUNDARY = "benchledgerboundary"


@dataclass(frozen=True)
class LedgerCost:
    """One kind of owned request, measured warm."""

    handler: Stats  # the handler's whole time
    ledger: Stats  # the time spent in the ledger's DynamoDB calls
    round_trips: float  # ledger calls per request (mean)
    log_bytes: float  # log lines + EMF per request


@dataclass(frozen=True)
class LedgerFigures:
    read: LedgerCost
    create: LedgerCost


class CallMeter:
    """Counts and times the calls a Ledger makes to DynamoDB (every one goes through Ledger._call)."""

    def __init__(self) -> None:
        self.calls = 0
        self.ms = 0.0

    @contextmanager
    def attached(self, ledger: Any) -> Iterator[CallMeter]:
        original = ledger._call

        def metered(operation: str, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(operation, **kwargs)
            finally:
                self.calls += 1
                self.ms += (time.perf_counter() - started) * 1000

        ledger._call = metered
        try:
            yield self
        finally:
            del ledger._call  # the class's method again

    def take(self) -> tuple[int, float]:
        taken = (self.calls, self.ms)
        self.calls, self.ms = 0, 0.0
        return taken


def upload_event(name: str, content: bytes) -> dict[str, Any]:
    from gateway_dev.cloud.apigw import proxy_event

    raw = (
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nocr\r\n'
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            "Content-Type: application/pdf\r\n\r\n"
        ).encode()
        + content
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )
    headers = [("Content-Type", f"multipart/form-data; boundary={BOUNDARY}")]
    return proxy_event("POST", "/v1/files", resource="/v1/{proxy+}", headers=headers, body=raw, api_key_id=CALLER)


def read_event(file_id: str) -> dict[str, Any]:
    from gateway_dev.cloud.apigw import proxy_event

    return proxy_event("GET", f"/v1/files/{file_id}", resource="/v1/{proxy+}", api_key_id=CALLER)


def measure(stack: Stack, function: Any, iterations: int, warmup: int) -> LedgerFigures:
    """The owned read and the create, each measured warm under AccountRoutes=owned (the default)."""
    from mistral_gateway.container import current

    created = answered(function.invoke(upload_event(f"bench-{stack.nonce}.pdf", b"%PDF bench")))
    file_id = str(created["id"])
    meter = CallMeter()
    with meter.attached(current().ledger):
        read = repeat(function, meter, lambda i: read_event(file_id), iterations, warmup)
        create = repeat(
            function,
            meter,
            lambda i: upload_event(f"bench-{stack.nonce}-{i}.pdf", uuid.uuid4().bytes),
            iterations,
            warmup,
        )
    return LedgerFigures(read, create)


def repeat(
    function: Any, meter: CallMeter, event_for: Callable[[int], dict[str, Any]], iterations: int, warmup: int
) -> LedgerCost:
    handler_ms: list[float] = []
    ledger_ms: list[float] = []
    calls = 0
    log_bytes = 0
    with captured_output() as sink:
        for i in range(-warmup, iterations):
            event = event_for(i)
            meter.take()
            before = sink.bytes
            started = time.perf_counter()
            answered(function.invoke(event))
            elapsed = (time.perf_counter() - started) * 1000
            count, spent = meter.take()
            if i >= 0:
                handler_ms.append(elapsed)
                ledger_ms.append(spent)
                calls += count
                log_bytes += sink.bytes - before
    return LedgerCost(stats(handler_ms), stats(ledger_ms), calls / iterations, log_bytes / iterations)


def answered(result: dict[str, Any]) -> dict[str, Any]:
    """The JSON answer of a 200, or the run stops (a figure of failing requests would mean nothing)."""
    if result.get("statusCode") != 200:
        raise RuntimeError(f"owned request failed: {result.get('statusCode')} {str(result.get('body'))[:300]}")
    body = json.loads(result["body"])
    if not isinstance(body, dict):
        raise RuntimeError("owned request answered something other than a JSON object")
    return body
