"""Canonical form of a request and the cache key derived from it.

Two requests that must get the same answer must get the same key: key order, explicit nulls, values equal
to Mistral's defaults, `1` vs `1.0`, a lone text part vs a plain string, and `stream` (one entry serves the
streamed and the plain form) do not split entries. Fields that only label a request (`metadata`,
`prompt_cache_key`, `service_tier`) are not part of the key. The input is the request's validated form
(checks.admitted), so no invalid body ever reaches a key; nothing is coerced across types here either.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

# Fields whose value never changes the answer, with the type a valid value has: a value of another type
# stays in the key, so an invalid body can never share a key with a valid one.
_IGNORED_FIELDS: dict[str, type | tuple[type, ...]] = {
    "stream": bool,
    "metadata": dict,
    "prompt_cache_key": str,
    "service_tier": str,
}

# Mistral's documented defaults: sending them explicitly is the same request as leaving them out.
_DEFAULTS: dict[str, Any] = {
    "safe_prompt": False,
    "n": 1,
    "presence_penalty": 0.0,
    "frequency_penalty": 0.0,
    "top_p": 1.0,
    "response_format": {"type": "text"},
    "parallel_tool_calls": True,
    "stop": [],
    "tools": [],
}

_FLOAT_FIELDS = frozenset({"temperature", "top_p", "presence_penalty", "frequency_penalty", "repetition_penalty"})


def _as_float(value: Any) -> Any:
    # Booleans are ints in Python; leave them alone so `true` never equals `1.0`.
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _content(value: Any) -> Any:
    if isinstance(value, list) and len(value) == 1:
        part = value[0]
        if isinstance(part, dict) and set(part) == {"type", "text"} and part["type"] == "text":
            return part["text"]
    return value


def _message(message: Any) -> Any:
    if not isinstance(message, dict):
        return message
    out = {key: value for key, value in message.items() if value is not None}
    if "content" in out:
        out["content"] = _content(out["content"])
    if out.get("role") == "assistant" and out.get("prefix") is False:
        del out["prefix"]
    if out.get("tool_calls") == []:
        del out["tool_calls"]
    return out


def canonical_chat(body: dict[str, Any]) -> dict[str, Any]:
    """The parts of a chat (or FIM) body that decide the answer, in a normal form."""
    out: dict[str, Any] = {}
    for key, value in body.items():
        if value is None or (key in _IGNORED_FIELDS and isinstance(value, _IGNORED_FIELDS[key])):
            continue
        if key in _FLOAT_FIELDS:
            value = _as_float(value)
        if key == "stop" and isinstance(value, str):
            value = [value]
        if key == "messages" and isinstance(value, list):
            value = [_message(message) for message in value]
        if key in _DEFAULTS and value == _DEFAULTS[key] and type(value) is type(_DEFAULTS[key]):
            continue
        out[key] = value
    if "tools" not in out and out.get("tool_choice") in ("auto", "none"):
        # Without tools, "auto" and "none" both mean: answer in text.
        del out["tool_choice"]
    elif out.get("tool_choice") == "auto":
        del out["tool_choice"]
    return out


def cache_key(route: str, scope: str, canonical: Any) -> str:
    """sha256 over (route, caller scope, canonical body). Only hashes ever reach the table or the logs."""
    material = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(f"{route}\n{scope}\n{material}".encode()).hexdigest()
    return f"{route}#{digest}"
