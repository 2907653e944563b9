"""Figure 8: the mistralai SDK through the local HTTP gateway (uvicorn + LocalGateway, as `make serve`) against the
same SDK straight at the emulator, alternating."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gateway_dev.bench.settings import CALLER_ID, CALLER_KEY, CHAT_PATH
from gateway_dev.bench.stack import Stack, captured_output, chat_body
from gateway_dev.bench.stats import Stats, stats
from gateway_dev.bench.warm import timed


@dataclass(frozen=True)
class OverHttp:
    hit: Stats
    miss: Stats
    direct: Stats
    upstream_calls_by_hits: int  # must be 0: a hit never reaches Mistral


def over_http(stack: Stack, iterations: int, warmup: int) -> OverHttp:
    from mistralai.client import Mistral

    from gateway_dev.runner.asgi import BackgroundServer, LocalGateway
    from gateway_dev.runner.bridge import ApiBridge
    from mistral_gateway.platform import after_response

    server = BackgroundServer(LocalGateway(ApiBridge(stack.template, api_keys={CALLER_KEY: CALLER_ID})))
    gateway = Mistral(api_key=CALLER_KEY, server_url=server.url)
    direct = Mistral(api_key=stack.mistral_key, server_url=stack.emulator.url)
    hit_text = f"http question {stack.nonce}"
    samples: dict[str, list[float]] = {"hit": [], "miss": [], "direct": []}
    try:
        with captured_output():
            gateway.chat.complete(**chat_body(hit_text))  # stored: every later call is a hit
            upstream_before = stack.emulator.calls(CHAT_PATH)
            for i in range(-warmup, iterations):
                calls = {
                    "hit": asking(gateway, hit_text),
                    "miss": asking(gateway, f"http miss {stack.nonce} {i}"),
                    "direct": asking(direct, f"http direct {stack.nonce} {i}"),
                }
                for name, call in calls.items():
                    elapsed, _, _ = timed(call)
                    if i >= 0:
                        samples[name].append(elapsed)
                    if name == "miss":
                        after_response.settle()  # its store (in this process) lands before the next timed call
            by_hits = stack.emulator.calls(CHAT_PATH) - upstream_before - 2 * (warmup + iterations)
    finally:
        server.stop()
    return OverHttp(stats(samples["hit"]), stats(samples["miss"]), stats(samples["direct"]), by_hits)


def asking(client: Any, text: str) -> Callable[[], Any]:
    return lambda: client.chat.complete(**chat_body(text))
