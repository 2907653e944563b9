"""The emulator's Responses API (`POST /v1/responses`, `POST /v1/responses/input_tokens`) and prompt cache.

Like Mistral's, its `/v1/responses` is stateless: `store` may only be false or null (`store: true` is refused
with Mistral's 422), there is nothing to chain to (`previous_response_id` is refused) and no `GET
/v1/responses/{id}`. Answers and streams are in the Responses wire format the openai SDK and the Vercel AI SDK
parse: a `response` object with `output` messages of `output_text` parts and `usage` in input/output tokens;
streams are named SSE events (`response.created`, `response.in_progress`, `response.output_item.added`,
`response.content_part.added`, `response.output_text.delta` per word, `...done`, `response.completed`), each with
its `type` and `sequence_number`.

Mistral's prompt cache is emulated per `prompt_cache_key`: the second request with a key the emulator has seen
reports its prompt tokens as cached (`usage.prompt_tokens_details.cached_tokens` on chat,
`usage.input_tokens_details.cached_tokens` on responses), so the gateway's pricing and its per-caller
namespacing of the key can be watched.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

from werkzeug.wrappers import Request, Response

from gateway_dev.emulator.routes import json_response

FILLER = ["and", "the", "emulator", "keeps", "writing", "one", "word", "at", "a", "time"]


def cached_prompt_tokens(emulator: Any, body: Any, prompt_tokens: int) -> int:
    """How many of the prompt's tokens Mistral's prompt cache would serve: all of them when this
    `prompt_cache_key` was seen before (a prefix of an earlier prompt), none the first time."""
    key = body.get("prompt_cache_key") if isinstance(body, dict) else None
    if not isinstance(key, str) or not key:
        return 0
    with emulator._lock:
        if key in emulator.prompt_cache_keys:
            return prompt_tokens
        emulator.prompt_cache_keys.add(key)
    return 0


def dispatch(emulator: Any, request: Request, payload: Any, raw: bytes, fault: Any) -> Response | None:
    """The answer for a Responses route, or None."""
    if not request.path.startswith("/v1/responses"):
        return None
    if request.path == "/v1/responses/input_tokens" and request.method == "POST":
        return _input_tokens(payload)
    if request.path != "/v1/responses":
        return json_response(404, {"detail": "Not Found"})
    if request.method != "POST":
        return json_response(405, {"detail": "Method Not Allowed"})
    if not isinstance(payload, dict):
        return json_response(400, {"object": "error", "message": "Invalid JSON body", "type": "invalid_request_error"})
    problems = _problems(payload)
    if problems:
        return _validation_error(problems)
    return _respond(emulator, payload, fault)


def _problems(body: dict[str, Any]) -> list[dict[str, Any]]:
    problems = []
    if not isinstance(body.get("model"), str):
        problems.append(_problem("model", "Field required", "missing"))
    if not isinstance(body.get("input"), str | list):
        problems.append(_problem("input", "Field required", "missing"))
    if body.get("store") not in (False, None):
        problems.append(_problem("store", "Value error, Stored responses are not supported", "value_error"))
    if body.get("previous_response_id") is not None:
        problems.append(_problem("previous_response_id", "Value error, responses are not stored", "value_error"))
    return problems


def _problem(field: str, msg: str, kind: str) -> dict[str, Any]:
    return {"loc": ["body", field], "msg": msg, "type": kind}


def _validation_error(problems: list[dict[str, Any]]) -> Response:
    body = {"object": "error", "message": {"detail": problems}, "type": "invalid_request_error", "param": None}
    return json_response(422, {**body, "code": None})


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def _items(value: Any) -> list[Any]:
    return [{"role": "user", "content": value}] if isinstance(value, str) else list(value)


def _prompt_tokens(body: dict[str, Any]) -> int:
    items = _items(body["input"])
    words = sum(len(_text(item.get("content")).split()) for item in items if isinstance(item, dict))
    return max(1, words + len(str(body.get("instructions") or "").split()))


def _answer_text(emulator: Any, body: dict[str, Any]) -> str:
    items = _items(body["input"])
    users = [item for item in items if isinstance(item, dict) and item.get("role") == "user"]
    prompt = _text(users[-1].get("content")) if users else ""
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


def _respond(emulator: Any, body: dict[str, Any], fault: Any) -> Response:
    response_id = "resp_" + uuid.uuid4().hex
    message_id = "msg_" + uuid.uuid4().hex
    text = _answer_text(emulator, body)
    prompt_tokens = _prompt_tokens(body)
    completion_tokens = len(text.split())
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
    part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
    message = {"id": message_id, "type": "message", "status": "completed", "role": "assistant", "content": [part]}
    finished = _response(body, response_id, "completed", [message], usage)
    if body.get("stream") is not True:
        return json_response(200, finished)
    delay = fault.chunk_delay if fault and fault.chunk_delay is not None else emulator.stream_delay
    events = _events(body, response_id, message, text, finished)
    return Response(_paced(events, fault, delay), status=200, content_type="text/event-stream")


def _events(
    body: dict[str, Any], response_id: str, message: dict[str, Any], text: str, finished: dict[str, Any]
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
    for piece in re.findall(r"\S+\s*|\s+", text) or [""]:  # one word per event, about a token each
        events.append(("response.output_text.delta", {**where, "content_index": 0, "delta": piece, "logprobs": []}))
    events += [
        ("response.output_text.done", {**where, "content_index": 0, "text": text, "logprobs": []}),
        ("response.content_part.done", {**where, "content_index": 0, "part": message["content"][0]}),
        ("response.output_item.done", {"output_index": 0, "item": message}),
        ("response.completed", {"response": finished}),
    ]
    return events


def _paced(events: list[tuple[str, dict[str, Any]]], fault: Any, delay: float) -> Iterator[bytes]:
    """The events as SSE, honouring the emulator's pace and the stream faults (cut, gate, error) at the third."""
    for index, (kind, data) in enumerate(events):
        if fault and fault.stream_cut and index == 2:
            return  # the connection ends without response.completed
        if fault and fault.stall and index == 2:
            time.sleep(fault.stall)
        if fault and fault.gate is not None and index == 2:
            fault.gate.wait(30)
        if fault and fault.stream_error and index == 2:
            error = {"type": "error", "code": "internal_server_error", "message": "Internal server error"}
            yield f"event: error\ndata: {json.dumps({**error, 'sequence_number': index})}\n\n".encode()
            return
        if delay and index:
            time.sleep(delay)
        payload = json.dumps({"type": kind, "sequence_number": index, **data})
        yield f"event: {kind}\ndata: {payload}\n\n".encode()


def _input_tokens(payload: Any) -> Response:
    if not isinstance(payload, dict) or not isinstance(payload.get("input"), str | list):
        return _validation_error([_problem("input", "Field required", "missing")])
    body = {"model": payload.get("model") or "", **payload}
    return json_response(200, {"object": "response.input_tokens", "input_tokens": _prompt_tokens(body)})
