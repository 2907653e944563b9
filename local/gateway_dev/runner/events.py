"""`make events`: write events/*.json, the API Gateway events for `sam local invoke -e` and `make invoke`.

They are generated (not hand-written) by the same translation `make serve` uses, with a fixed request id
and time so that regenerating them changes nothing; a test checks that the files match this generator and
that each one is answered by the handler as its name says.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from gateway_dev.cloud.apigw import proxy_event
from gateway_dev.cloud.template import Template

EVENTS_DIR = Path(__file__).resolve().parents[3] / "events"
LOCAL_CALLER = "local-caller"  # the API key id the authorizer would hand over in the cloud

_CHAT = {"model": "mistral-small-latest", "messages": [{"role": "user", "content": "What is the capital of France?"}]}

# name -> (method, path, body, extra headers, expected status, what it shows); every route here is static, so
# the event's resource is its path.
EVENTS: dict[str, tuple[str, str, Any, dict[str, str], int, str]] = {
    "chat": ("POST", "/v1/chat/completions", _CHAT, {}, 200, "a chat completion (MISS)"),
    "chat-repeat": (
        "POST",
        "/v1/chat/completions",
        {"messages": _CHAT["messages"], "temperature": None, "model": "mistral-small-latest"},
        {},
        200,
        "the same request, keys reordered and a default spelled out: a cache HIT after chat.json",
    ),
    "stream": (
        "POST",
        "/v1/chat/completions",
        {**_CHAT, "stream": True},
        {"Accept": "text/event-stream"},
        200,
        "the same question streamed: an SSE body, served from the same cache entry",
    ),
    "bad-body": (
        "POST",
        "/v1/chat/completions",
        {"model": "mistral-small-latest", "messages": [{"role": "wizard", "content": 42}]},
        {},
        422,
        "an invalid request: a Mistral-style 422, no upstream call",
    ),
    "models": ("GET", "/v1/models", None, {}, 200, "the model list"),
    "embeddings": (
        "POST",
        "/v1/embeddings",
        {"model": "mistral-embed", "input": ["Paris is the capital of France."]},
        {},
        200,
        "embeddings for one input",
    ),
    "fim": (
        "POST",
        "/v1/fim/completions",
        {"model": "codestral-latest", "prompt": "def add(a, b):\n    ", "suffix": "\n\nprint(add(1, 2))"},
        {},
        200,
        "a fill-in-the-middle completion",
    ),
    "health": ("GET", "/health", None, {}, 200, "health: secret and table reachable, no upstream call"),
}


@cache
def _public_paths() -> frozenset[str]:
    """Routes the template opens to callers without a key (Auth: NONE)."""
    return frozenset(route.path for route in Template().routes() if route.public)


def build(name: str) -> dict[str, Any]:
    method, path, body, extra, _status, _about = EVENTS[name]
    headers = {"Content-Type": "application/json", "User-Agent": "curl/8.5.0", **extra}
    if body is None:
        headers.pop("Content-Type")
    event = proxy_event(
        method,
        path,
        resource=path,
        headers=list(headers.items()),
        body=json.dumps(body) if body is not None else None,
        api_key_id=None if path in _public_paths() else LOCAL_CALLER,  # as the authorizer would (or not) run
    )
    # Fixed, so that regenerating is a no-op and sam local shows a recognisable id.
    context = event["requestContext"]
    context["requestId"] = context["extendedRequestId"] = f"event-{name}"
    context["requestTime"] = "25/Nov/2026:12:00:00 +0000"
    context["requestTimeEpoch"] = 1_795_608_000_000
    return event


def render(name: str) -> str:
    return json.dumps(build(name), indent=2) + "\n"


def main() -> int:
    EVENTS_DIR.mkdir(exist_ok=True)
    for name in EVENTS:
        (EVENTS_DIR / f"{name}.json").write_text(render(name))
        print(f"events/{name}.json  {EVENTS[name][5]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
