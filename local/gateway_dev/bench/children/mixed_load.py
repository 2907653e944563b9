"""One container serving a mixed load (chat hits and misses, streams, embeddings); reports its peak RSS.

argv: app.py, requests, nonce, memory MB, report file."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from gateway_dev.bench.children.common import Context, load_app, peak_rss_kb, response_headers, write_report
from gateway_dev.cloud.apigw import proxy_event


def chat(text: str, stream: bool = False) -> tuple[str, dict[str, Any]]:
    body = {"model": "mistral-small-latest", "stream": stream, "messages": [{"role": "user", "content": text}]}
    return "/v1/chat/completions", body


def request(i: int, nonce: str) -> tuple[str, tuple[str, dict[str, Any]]]:
    """4 in 10 repeated chat questions, 2 new ones, 2 streamed (one repeated), 2 embeddings (one repeated)."""
    kind = i % 10
    if kind < 4:
        return "hit", chat(f"repeated question {i % 20}")
    if kind < 6:
        return "miss", chat(f"new question {nonce} {i}")
    if kind == 6:
        return "stream", chat(f"repeated question {i % 20}", stream=True)
    if kind == 7:
        return "stream", chat(f"new streamed question {nonce} {i}", stream=True)
    text = f"repeated passage {i % 10}" if kind == 8 else f"new passage {nonce} {i}"
    return "embeddings", ("/v1/embeddings", {"model": "mistral-embed", "input": [text]})


def main() -> None:
    app_path, requests, nonce, memory_mb, report_path = sys.argv[1:6]
    app = load_app(app_path)
    counts: dict[str, int] = {}
    started = time.perf_counter()
    for i in range(int(requests)):
        kind, (path, body) = request(i, nonce)
        headers = [("Content-Type", "application/json")]
        event = proxy_event(
            "POST", path, resource=path, headers=headers, body=json.dumps(body), api_key_id="bench-mixed"
        )
        result = app.lambda_handler(event, Context(int(memory_mb)))
        label = f"{kind} {result.get('statusCode')} {response_headers(result).get('x-cache')}"
        counts[label] = counts.get(label, 0) + 1
    report = {
        "requests": int(requests),
        "seconds": time.perf_counter() - started,
        "counts": counts,
        "peak_rss_kb": peak_rss_kb(),
    }
    write_report(report_path, report)


if __name__ == "__main__":
    main()
