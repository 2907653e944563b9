"""The OpenAI SDK's dialect of Mistral's API, translated before anything else looks at a request.

Apps that use the OpenAI SDK with `base_url=<gateway>/v1` send `seed` (Mistral: `random_seed`) and may send
`max_completion_tokens` (Mistral: `max_tokens`) and `stream_options`. Translating first means validation,
the cache key and the upstream call all see one dialect, so both SDKs share cache entries.
"""

from __future__ import annotations

from typing import Any

_RENAMED = {"seed": "random_seed", "max_completion_tokens": "max_tokens"}
# Accepted and dropped: they shape the HTTP exchange, not the answer (usage is always in our last chunk).
_DROPPED = frozenset({"stream_options"})


def mistral_chat(body: dict[str, Any]) -> dict[str, Any]:
    """The chat body in Mistral's dialect. A field given in both dialects keeps Mistral's value."""
    if not any(name in body for name in (*_RENAMED, *_DROPPED)):
        return body
    translated = {key: value for key, value in body.items() if key not in _RENAMED and key not in _DROPPED}
    for openai_name, mistral_name in _RENAMED.items():
        if openai_name in body and body[openai_name] is not None:
            translated.setdefault(mistral_name, body[openai_name])
    return translated


def speaks_openai(body: dict[str, Any]) -> bool:
    """Whether the body uses a field this module renames or drops."""
    return any(name in body for name in (*_RENAMED, *_DROPPED))
