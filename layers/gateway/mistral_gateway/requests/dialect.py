"""The OpenAI SDK's dialect of Mistral's API, translated before anything else looks at a request.

Apps that use the OpenAI SDK with `base_url=<gateway>/v1` (or LangChain's ChatOpenAI) send `seed` (Mistral:
`random_seed`) and may send `max_completion_tokens` (Mistral: `max_tokens`), `stream_options`, `developer`
messages (OpenAI's newer name for `system`) and labels that only OpenAI reads. Translating first means
validation, the cache key and the upstream call all see one dialect, so both SDKs share cache entries.
"""

from __future__ import annotations

from typing import Any

_RENAMED = {"seed": "random_seed", "max_completion_tokens": "max_tokens"}
# Accepted and dropped: they shape the HTTP exchange or label the request for OpenAI's own dashboards and abuse
# monitoring (`user`, `safety_identifier`: who the end user is; `store`: keep the completion at OpenAI), so
# they cannot change Mistral's answer. Dropped, they stay out of the cache key too.
_DROPPED = frozenset({"stream_options", "user", "safety_identifier", "store"})
# OpenAI's processing tiers; Mistral knows only "auto" and "standard_only" and 422s the rest. A tier decides
# price and latency at OpenAI, not the answer.
_OPENAI_SERVICE_TIERS = frozenset({"default", "flex", "scale", "priority"})
_ROLES = {"developer": "system"}


def mistral_chat(body: dict[str, Any]) -> dict[str, Any]:
    """The chat body in Mistral's dialect. A field given in both dialects keeps Mistral's value."""
    if not speaks_openai(body):
        return body
    tier = body.get("service_tier")
    openai_tier = isinstance(tier, str) and tier in _OPENAI_SERVICE_TIERS
    renamed_roles = _has_openai_roles(body.get("messages"))
    translated = {key: value for key, value in body.items() if key not in _RENAMED and key not in _DROPPED}
    for openai_name, mistral_name in _RENAMED.items():
        if openai_name in body and body[openai_name] is not None:
            translated.setdefault(mistral_name, body[openai_name])
    if openai_tier:
        del translated["service_tier"]
    if renamed_roles:
        translated["messages"] = [_mistral_message(message) for message in body["messages"]]
    return translated


def speaks_openai(body: dict[str, Any]) -> bool:
    """Whether the body uses anything this module renames or drops."""
    tier = body.get("service_tier")
    return (
        (isinstance(tier, str) and tier in _OPENAI_SERVICE_TIERS)
        or _has_openai_roles(body.get("messages"))
        or any(name in body for name in (*_RENAMED, *_DROPPED))
    )


def _has_openai_roles(messages: Any) -> bool:
    return isinstance(messages, list) and any(
        isinstance(message, dict) and isinstance(message.get("role"), str) and message["role"] in _ROLES
        for message in messages
    )


def _mistral_message(message: Any) -> Any:
    if isinstance(message, dict) and isinstance(message.get("role"), str) and message["role"] in _ROLES:
        return {**message, "role": _ROLES[message["role"]]}
    return message
