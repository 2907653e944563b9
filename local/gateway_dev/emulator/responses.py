"""The emulator's Responses API (`POST /v1/responses`, `POST /v1/responses/input_tokens`) and prompt cache.

Like Mistral's, its `/v1/responses` is stateless: `store` may only be false or null (`store: true` is refused
with Mistral's 422), there is nothing to chain to (`previous_response_id` is refused) and no `GET
/v1/responses/{id}`. Answers and streams are in the Responses wire format the openai SDK and the Vercel AI SDK
parse: a `response` object with `output` messages of `output_text` parts and `usage` in input/output tokens;
streams are named SSE events (`response.created`, `response.in_progress`, `response.output_item.added`,
`response.content_part.added`, `response.output_text.delta` per word, `...done`, `response.completed`), each with
its `type` and `sequence_number`.

Mistral's prompt cache is emulated per `prompt_cache_key` (chat.py): the second request with a key the emulator has seen
reports its prompt tokens as cached (`usage.prompt_tokens_details.cached_tokens` on chat,
`usage.input_tokens_details.cached_tokens` on responses), so the gateway's pricing and its per-caller
namespacing of the key can be watched.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

from werkzeug.wrappers import Response

from gateway_dev.emulator import sse
from gateway_dev.emulator.chat import cached_prompt_tokens
from gateway_dev.emulator.wire import FILLER, Call, invalid_json, json_response, problem, text, validation_error

STREAM_ERROR = {"type": "error", "code": "internal_server_error", "message": "Internal server error"}


def dispatch(emulator: Any, call: Call) -> Response | None:
    """The answer for a Responses route, or None."""
    if not call.path.startswith("/v1/responses"):
        return None
    if call.path == "/v1/responses/input_tokens" and call.method == "POST":
        return _input_tokens(call.payload)
    if call.path != "/v1/responses":
        return json_response(404, {"detail": "Not Found"})
    if call.method != "POST":
        return json_response(405, {"detail": "Method Not Allowed"})
    if not isinstance(call.payload, dict):
        return invalid_json()
    problems = _problems(call.payload)
    if problems:
        return validation_error(problems)
    return _respond(emulator, call.payload, call)


def _problems(body: dict[str, Any]) -> list[dict[str, Any]]:
    problems = []
    if not isinstance(body.get("model"), str):
        problems.append(problem(["body", "model"], "Field required", "missing"))
    if not isinstance(body.get("input"), str | list):
        problems.append(problem(["body", "input"], "Field required", "missing"))
    if body.get("store") not in (False, None):
        problems.append(problem(["body", "store"], "Value error, Stored responses are not supported", "value_error"))
    if body.get("previous_response_id") is not None:
        message = "Value error, responses are not stored"
        problems.append(problem(["body", "previous_response_id"], message, "value_error"))
    return problems


def _items(value: Any) -> list[Any]:
    return [{"role": "user", "content": value}] if isinstance(value, str) else list(value)


def _prompt_tokens(body: dict[str, Any]) -> int:
    items = _items(body["input"])
    words = sum(len(text(item.get("content")).split()) for item in items if isinstance(item, dict))
    return max(1, words + len(str(body.get("instructions") or "").split()))


def _answer_text(emulator: Any, body: dict[str, Any]) -> str:
    items = _items(body["input"])
    users = [item for item in items if isinstance(item, dict) and item.get("role") == "user"]
    prompt = text(users[-1].get("content")) if users else ""
    words = f"Emulated answer to: {prompt[:200]} (turn {len(users)})".split(" ")
    words += [FILLER[i % len(FILLER)] for i in range(max(0, emulator.answer_words - len(words)))]
    max_tokens = body.get("max_output_tokens")
    if isinstance(max_tokens, int) and not isinstance(max_tokens, bool) and 0 < max_tokens < len(words):
        words = words[:max_tokens]
    return " ".join(words)


def _response(body: dict[str, Any], response_id: str, status: str, output: list[Any], usage: Any) -> dict[str, Any]:
    """A Responses `response` object, with the fields the openai SDK and the Vercel AI SDK read."""
    return {
        "id": response_id,
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "completed_at": int(time.time()) if status == "completed" else None,
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "max_tool_calls": None,
        "model": body["model"],
        "output": output,
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": None,
        "prompt_cache_key": body.get("prompt_cache_key"),
        "reasoning": {"effort": None, "summary": None},
        "service_tier": "default",
        "store": False,
        "temperature": body.get("temperature"),
        "text": {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "top_logprobs": 0,
        "top_p": body.get("top_p"),
        "truncation": "disabled",
        "usage": usage,
        "user": None,
        "metadata": body.get("metadata") or {},
        "background": False,
    }


def _respond(emulator: Any, body: dict[str, Any], call: Call) -> Response:
    response_id = "resp_" + uuid.uuid4().hex
    message_id = "msg_" + uuid.uuid4().hex
    answer = _answer_text(emulator, body)
    prompt_tokens = _prompt_tokens(body)
    completion_tokens = len(answer.split())
    usage = {
        "input_tokens": prompt_tokens,
        "input_tokens_details": {
            "cached_tokens": cached_prompt_tokens(emulator, body, prompt_tokens),
            "cache_write_tokens": 0,
        },
        "output_tokens": completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt_tokens + completion_tokens,
    }
    part = {"type": "output_text", "text": answer, "annotations": [], "logprobs": []}
    message = {"id": message_id, "type": "message", "status": "completed", "role": "assistant", "content": [part]}
    finished = _response(body, response_id, "completed", [message], usage)
    if body.get("stream") is not True:
        return json_response(200, finished)
    events = [
        sse.event({"type": kind, "sequence_number": index, **data}, kind)
        for index, (kind, data) in enumerate(_events(body, response_id, message, answer, finished))
    ]
    error = sse.event({**STREAM_ERROR, "sequence_number": 2}, "error")  # in place of the third event
    return sse.stream(events, call.fault, call.delay(emulator.stream_delay), error)


def _events(
    body: dict[str, Any], response_id: str, message: dict[str, Any], answer: str, finished: dict[str, Any]
) -> list[tuple[str, dict[str, Any]]]:
    started = _response(body, response_id, "in_progress", [], None)
    item = {**message, "status": "in_progress", "content": []}
    empty = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
    where = {"item_id": message["id"], "output_index": 0}
    events: list[tuple[str, dict[str, Any]]] = [
        ("response.created", {"response": started}),
        ("response.in_progress", {"response": started}),
        ("response.output_item.added", {"output_index": 0, "item": item}),
        ("response.content_part.added", {**where, "content_index": 0, "part": empty}),
    ]
    for piece in re.findall(r"\S+\s*|\s+", answer) or [""]:  # one word per event, about a token each
        events.append(("response.output_text.delta", {**where, "content_index": 0, "delta": piece, "logprobs": []}))
    events += [
        ("response.output_text.done", {**where, "content_index": 0, "text": answer, "logprobs": []}),
        ("response.content_part.done", {**where, "content_index": 0, "part": message["content"][0]}),
        ("response.output_item.done", {"output_index": 0, "item": message}),
        ("response.completed", {"response": finished}),
    ]
    return events


def _input_tokens(payload: Any) -> Response:
    if not isinstance(payload, dict) or not isinstance(payload.get("input"), str | list):
        return validation_error([problem(["body", "input"], "Field required", "missing")])
    body = {"model": payload.get("model") or "", **payload}
    return json_response(200, {"object": "response.input_tokens", "input_tokens": _prompt_tokens(body)})
