"""Server-sent events for `"stream": true`: split Mistral's stream into events, and turn answers both ways.

The streaming function forwards Mistral's events as they arrive (`EventSplitter` cuts the byte stream into
whole events without changing a byte) while `assemble` builds the complete answer from them, so the cache
holds one entry that serves both forms: a plain request gets the assembled answer, a streamed one gets the
original events back. An answer first stored from a plain request is replayed by `to_events`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from typing import Any

DONE = "data: [DONE]\n\n"
FINISHED = frozenset({"stop", "length", "tool_calls", "model_length"})
# An SSE comment: every SSE parser skips it, and it keeps a silent connection (and its proxies) open.
KEEPALIVE = b": keep-alive\n\n"
# The end of an event: a blank line, in any of the three line-ending styles the SSE spec allows.
_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")


class EventSplitter:
    """Cuts a byte stream into whole SSE events (each with its blank line), byte for byte."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> Iterator[bytes]:
        self._buffer += chunk
        start = 0
        for end in _EVENT_END.finditer(self._buffer):
            yield self._buffer[start : end.end()]
            start = end.end()
        self._buffer = self._buffer[start:]

    @property
    def pending(self) -> bytes:
        """Bytes of an event that has not ended (what a cut stream leaves behind)."""
        return self._buffer


def event_data(event: bytes) -> str | None:
    """The `data` of one SSE event (its data lines joined), or None for a comment-only event."""
    lines = [line for line in re.split(rb"\r\n|\n|\r", event) if line.startswith(b"data:")]
    if not lines:
        return None
    return "\n".join(line[5:].removeprefix(b" ").decode("utf-8", "replace") for line in lines)


def _event(data: dict[str, Any]) -> str:
    return f"data: {json.dumps(data, separators=(',', ':'), ensure_ascii=False)}\n\n"


def to_events(completion: dict[str, Any]) -> str:
    """A complete chat/FIM answer as an SSE body: role, content and tool calls, finish reason + usage, DONE."""
    head = {
        "id": completion.get("id", ""),
        "object": "chat.completion.chunk",
        "created": completion.get("created", 0),
        "model": completion.get("model", ""),
    }
    choices = completion.get("choices") or []

    def chunk(deltas: list[dict[str, Any]], finish: list[str | None], **extra: Any) -> str:
        return _event(
            {
                **head,
                "choices": [
                    {"index": choice.get("index", i), "delta": deltas[i], "finish_reason": finish[i]}
                    for i, choice in enumerate(choices)
                ],
                **extra,
            }
        )

    none: list[str | None] = [None] * len(choices)
    events = [chunk([{"role": "assistant", "content": ""} for _ in choices], none)]
    bodies = []
    for choice in choices:
        message = choice.get("message") or {}
        delta: dict[str, Any] = {"content": message.get("content") or ""}
        if message.get("tool_calls"):
            delta["tool_calls"] = [{"index": i, **call} for i, call in enumerate(message["tool_calls"])]
        bodies.append(delta)
    events.append(chunk(bodies, none))
    extra = {"usage": completion["usage"]} if completion.get("usage") else {}
    events.append(chunk([{"content": ""} for _ in choices], [c.get("finish_reason") for c in choices], **extra))
    return "".join(events) + DONE


def assemble(chunks: Iterable[dict[str, Any]]) -> dict[str, Any] | None:
    """Stream chunks back into one complete answer; None unless every choice saw its finish reason."""
    assembler = Assembler()
    for data in chunks:
        assembler.feed(data)
    return assembler.answer()


class Assembler:
    """Builds the complete answer chunk by chunk, keeping only what the answer holds (its text, tool calls,
    finish reasons, usage), never the chunks themselves: a live stream holds this, not a list of dicts.

    `text_bytes` is the text kept so far; `drop_text()` lets go of it (an answer too large to store) while
    finish reasons and usage are still followed, which is all a stream's bookkeeping then needs."""

    def __init__(self) -> None:
        self.head: dict[str, Any] = {}
        self.choices: dict[int, dict[str, Any]] = {}
        self.usage: dict[str, Any] | None = None
        self.text_bytes = 0
        self.keeps_text = True

    def feed(self, data: dict[str, Any]) -> None:
        self.head = self.head or {key: data.get(key) for key in ("id", "created", "model")}
        self.usage = data.get("usage") or self.usage
        for part in data.get("choices") or []:
            index = int(part.get("index", 0))
            choice = self.choices.setdefault(index, {"content": [], "tool_calls": {}, "finish_reason": None})
            delta = part.get("delta") or {}
            if part.get("finish_reason"):
                choice["finish_reason"] = part["finish_reason"]
            if not self.keeps_text:
                continue
            if isinstance(delta.get("content"), str):
                choice["content"].append(delta["content"])
                self.text_bytes += len(delta["content"])
            for position, call in enumerate(delta.get("tool_calls") or []):
                slot = choice["tool_calls"].setdefault(call.get("index", position), {"function": {}})
                slot.update({key: value for key, value in call.items() if key not in ("function", "index")})
                function = call.get("function") or {}
                slot["function"]["name"] = function.get("name") or slot["function"].get("name")
                arguments = function.get("arguments") or ""
                slot["function"]["arguments"] = slot["function"].get("arguments", "") + arguments
                self.text_bytes += len(arguments) + len(str(slot["function"]["name"] or ""))

    def drop_text(self) -> None:
        self.keeps_text = False
        self.text_bytes = 0
        for choice in self.choices.values():
            choice["content"], choice["tool_calls"] = [], {}

    @property
    def finished(self) -> bool:
        """Every choice saw a normal finish reason."""
        return bool(self.choices) and all(choice["finish_reason"] in FINISHED for choice in self.choices.values())

    def answer(self) -> dict[str, Any] | None:
        """The complete answer; None unless every choice finished and the text was kept."""
        if not self.finished or not self.keeps_text:
            return None
        return {
            **self.head,
            "object": "chat.completion",
            "choices": [
                {
                    "index": index,
                    "message": {
                        "role": "assistant",
                        "content": "".join(choice["content"]),
                        "tool_calls": [choice["tool_calls"][k] for k in sorted(choice["tool_calls"])] or None,
                    },
                    "finish_reason": choice["finish_reason"],
                }
                for index, choice in sorted(self.choices.items())
            ],
            "usage": self.usage or {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        }


def error_event(body: dict[str, Any]) -> bytes:
    """A final event for an error after the stream has started: the OpenAI SDK raises on its `error` key,
    and the Mistral SDK fails on it as an invalid chunk; neither mistakes the stream for a complete one."""
    return _event({"error": body, **body}).encode()
