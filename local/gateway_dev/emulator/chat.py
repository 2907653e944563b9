"""`POST /v1/chat/completions` and `POST /v1/fim/completions`, streamed or not: deterministic answers from the
request's bytes, structured output (`response_format`), tool calls valid against the tool's parameters, `n`
choices, `max_tokens` cuts, and Mistral's prompt cache per `prompt_cache_key`. Other routes that answer like
chat (agents, batch lines, conversations) call `answer`."""

from __future__ import annotations

import hashlib
import json
import re
import time
from typing import Any

from werkzeug.wrappers import Response

from gateway_dev.emulator import sse
from gateway_dev.emulator.schema_instance import instance
from gateway_dev.emulator.wire import (
    FAULT_KEY,
    FILLER,
    INVALID,
    Call,
    Fault,
    invalid_json,
    json_response,
    problem,
    text,
    validation_error,
)

ROUTES = ("/v1/chat/completions", "/v1/fim/completions")
STREAM_ERROR = sse.event({"object": "error", "message": "Internal server error", "type": "internal_server_error"})


def dispatch(emulator: Any, call: Call) -> Response | None:
    if call.path not in ROUTES:
        return None
    if call.method != "POST":
        return json_response(405, {"detail": "Method Not Allowed"})
    if call.payload is INVALID or not isinstance(call.payload, dict):
        return invalid_json()
    route = _chat if call.path == ROUTES[0] else _fim
    return route(emulator, call.payload, call.raw, call.environ, call.fault)


def answer(emulator: Any, body: dict[str, Any], raw: bytes, environ: dict[str, Any] | None = None) -> Response:
    """A chat completion for another route's request (agents answer like chat, streamed too, with the
    request's stream faults when `environ` is the request's)."""
    environ = environ if environ is not None else {}
    return _chat(emulator, body, raw, environ, environ.get(FAULT_KEY))


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


def _chat(emulator: Any, body: dict[str, Any], raw: bytes, environ: dict[str, Any], fault: Fault | None) -> Response:
    problems = []
    if not isinstance(body.get("model"), str):
        problems.append(problem(["body", "model"], "Field required", "missing"))
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        problems.append(problem(["body", "messages"], "List should have at least 1 item", "too_short"))
    if problems:
        return validation_error(problems)
    assert isinstance(messages, list)
    last_user = next((m for m in reversed(messages) if isinstance(m, dict) and m.get("role") == "user"), {})
    prompt_text = text(last_user.get("content"))
    content = structured_content(body, "Emulated answer to: " + prompt_text[:200])
    prompt_tokens = max(1, sum(len(text(m.get("content")).split()) for m in messages if isinstance(m, dict)))
    tool = wants_tool(body, prompt_text)
    return _completion(emulator, body, raw, environ, fault, content, prompt_tokens, tool)


def _fim(emulator: Any, body: dict[str, Any], raw: bytes, environ: dict[str, Any], fault: Fault | None) -> Response:
    if not isinstance(body.get("model"), str) or not isinstance(body.get("prompt"), str):
        return validation_error([problem(["body", "prompt"], "Field required", "missing")])
    content = f"    return None  # emulated completion {hashlib.sha256(raw).hexdigest()[:8]}"
    prompt_tokens = max(1, len((body["prompt"] + " " + str(body.get("suffix") or "")).split()))
    return _completion(emulator, body, raw, environ, fault, content, prompt_tokens, False)


def _completion(
    emulator: Any,
    body: dict[str, Any],
    raw: bytes,
    environ: dict[str, Any],
    fault: Fault | None,
    content: str,
    prompt_tokens: int,
    wants_a_tool: bool,
) -> Response:
    words = content.split(" ")
    if not is_structured(body):  # filler would break the JSON
        words += [FILLER[i % len(FILLER)] for i in range(max(0, emulator.answer_words - len(words)))]
    finish_reason = "stop"
    max_tokens = body.get("max_tokens")
    if isinstance(max_tokens, int) and not isinstance(max_tokens, bool) and len(words) > max_tokens:
        words, finish_reason = words[:max_tokens], "length"
    content = " ".join(words)
    tool_calls = None
    if wants_a_tool:
        tool, arguments = tool_call(body)
        call_id = hashlib.sha256(raw).hexdigest()[:9]
        tool_calls = [
            {"id": call_id, "type": "function", "function": {"name": tool, "arguments": arguments}, "index": 0}
        ]
        content, finish_reason = "", "tool_calls"
    completion_tokens = len(content.split()) if content else 1
    usage: dict[str, Any] = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    if cached := cached_prompt_tokens(emulator, body, prompt_tokens):
        usage["prompt_tokens_details"] = {"cached_tokens": cached}
    requested_n = body.get("n")
    n = requested_n if isinstance(requested_n, int) and requested_n > 0 else 1
    head = {"id": "emu-" + hashlib.sha256(raw).hexdigest()[:24], "created": int(time.time()), "model": body["model"]}
    if body.get("stream") is True:
        delay = fault.chunk_delay if fault and fault.chunk_delay is not None else emulator.stream_delay
        events = _chunks(head, content, tool_calls, finish_reason, usage, n)
        return sse.stream(events, fault, delay, STREAM_ERROR, sse.DONE, environ)
    message: dict[str, Any] = {"role": "assistant", "content": content, "tool_calls": tool_calls}
    choices = [{"index": i, "message": message, "finish_reason": finish_reason} for i in range(n)]
    return json_response(200, {**head, "object": "chat.completion", "choices": choices, "usage": usage})


def _chunks(
    head: dict[str, Any],
    content: str,
    tool_calls: list[dict[str, Any]] | None,
    finish_reason: str,
    usage: dict[str, Any],
    n: int,
) -> list[bytes]:
    """The answer as chat.completion.chunk events: the role, one word per event (about a token each) or the
    tool calls, then the finish reason with the usage."""

    def chunk(deltas: dict[str, Any], finish: str | None, with_usage: bool = False) -> bytes:
        choices = [{"index": i, "delta": deltas, "finish_reason": finish} for i in range(n)]
        data: dict[str, Any] = {"id": head["id"], "object": "chat.completion.chunk", **head, "choices": choices}
        return sse.event({**data, "usage": usage} if with_usage else data)

    events = [chunk({"role": "assistant", "content": ""}, None)]
    if tool_calls:
        events.append(chunk({"tool_calls": tool_calls}, None))
    else:
        events.extend(chunk({"content": piece}, None) for piece in re.findall(r"\S+\s*|\s+", content) or [""])
    events.append(chunk({"content": ""}, finish_reason, with_usage=True))
    return events


def structured_content(body: dict[str, Any], answer_text: str) -> str:
    """The answer's content under `response_format`: a JSON object, or an instance of the given schema."""
    response_format = body.get("response_format")
    if not isinstance(response_format, dict):
        return answer_text
    if response_format.get("type") == "json_object":
        return json.dumps({"answer": answer_text})
    if response_format.get("type") == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema") or {}
        return json.dumps(instance(schema))
    return answer_text


def is_structured(body: dict[str, Any]) -> bool:
    response_format = body.get("response_format")
    return isinstance(response_format, dict) and response_format.get("type") in ("json_object", "json_schema")


def wants_tool(body: dict[str, Any], prompt_text: str) -> bool:
    """Whether to answer with a tool call. With tool_choice "auto" (or none given) it calls one when the user
    spoke last and answers in text after a tool's result: the loop an agent runs (LlamaIndex's structured
    output relies on "auto"), made deterministic."""
    choice = body.get("tool_choice")
    if not body.get("tools") or choice == "none":
        return False
    if choice in ("any", "required") or isinstance(choice, dict) or "call a tool" in prompt_text:
        return True
    messages = body.get("messages")
    last = messages[-1] if isinstance(messages, list) and messages else None
    return isinstance(last, dict) and last.get("role") == "user"


def tool_call(body: dict[str, Any]) -> tuple[str, str]:
    """(name, JSON arguments) for the named tool_choice or the first tool, valid against its parameters."""
    tools = [tool.get("function") or {} for tool in body["tools"] if isinstance(tool, dict)]
    choice = body.get("tool_choice")
    wanted = (choice.get("function") or {}).get("name") if isinstance(choice, dict) else None
    function = next((tool for tool in tools if tool.get("name") == wanted), tools[0] if tools else {})
    return str(function.get("name", "tool")), json.dumps(instance(function.get("parameters") or {"type": "object"}))
