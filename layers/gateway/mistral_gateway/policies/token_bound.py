"""What a request may cost before Mistral answers: an upper bound of the tokens it can bill, read from its body.

The budget reserves this worst case before the upstream call and corrects it to the real usage afterwards
(quota.py), so an estimate may be high, never low.
"""

from __future__ import annotations

import json
import math
from typing import Any

# Control tokens of a chat template ([INST], [/INST], [TOOL_CALLS]...), per request and per message: a margin.
TEMPLATE_TOKENS = 16


# A content part whose cost is not its size. An image is at most a few thousand tokens on every Mistral vision
# model (a 1024x1024 image in 16 px patches is 4,096 plus row breaks); a document's pages are each about an
# image, and its page count cannot be known from the request: an estimate (README).
# Where a count read from a request stops growing: far above any budget, and small enough that a product of
# two (max_tokens x n) stays within DynamoDB's 38 significant digits.
MAX_WHOLE = 10**12


MEDIA_TOKENS = {"image_url": 8_192, "input_image": 8_192, "document_url": 65_536, "file": 65_536}


def estimate_tokens(body: dict[str, Any], default_completion_tokens: int) -> int:
    """An upper bound of what Mistral can bill for the request: its prompt bound plus the completions it allows.

    Mistral's tokenizers (byte-level BPE, or SentencePiece with byte fallback) never make a text token of less
    than one UTF-8 byte, so the text of a request costs at most its UTF-8 size; the request's JSON with
    non-ASCII escaped (every field, tools, schemas, tool call arguments, prediction...) is at least that, and
    its punctuation outweighs the few control tokens of a chat template, for which a margin is added anyway.
    Images cost a fixed, generous amount each (not their base64 size). A completion is `max_tokens` (or
    `default_completion_tokens` (QUOTA_DEFAULT_COMPLETION_TOKENS) when unset: the one estimate here, see the
    README) times `n`.
    """
    prompt = prompt_tokens(body)
    if "input" in body:
        return prompt  # embeddings: no completion
    completion = max_tokens(body)
    if completion is None:
        completion = default_completion_tokens
    return prompt + completion * choices(body)


def prompt_tokens(body: dict[str, Any]) -> int:
    """An upper bound of the prompt's tokens (see estimate_tokens)."""
    media = _media_tokens(body)
    return len(json.dumps(_without_media(body))) + TEMPLATE_TOKENS * (1 + _count(body.get("messages"))) + media


def choices(body: dict[str, Any]) -> int:
    return max(1, _whole(body.get("n")) or 1)


def max_tokens(body: dict[str, Any]) -> int | None:
    """The request's `max_tokens` as a whole number, or None when it sets none (or none that is usable)."""
    return _whole(body.get("max_tokens"))


def _whole(value: Any) -> int | None:
    # An int is compared as an int: a huge one overflows the float conversion math.isfinite makes.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return min(int(value), MAX_WHOLE) if value >= 0 else None


def _count(value: Any) -> int:
    return len(value) if isinstance(value, list) else 0


def _parts(body: dict[str, Any]) -> list[Any]:
    messages = body.get("messages")
    if not isinstance(messages, list):
        return []
    contents = [message.get("content") for message in messages if isinstance(message, dict)]
    return [part for content in contents if isinstance(content, list) for part in content]


def _media_tokens(body: dict[str, Any]) -> int:
    kinds = [part.get("type") for part in _parts(body) if isinstance(part, dict)]
    return sum(MEDIA_TOKENS.get(kind, 0) for kind in kinds if isinstance(kind, str))


def _without_media(body: dict[str, Any]) -> dict[str, Any]:
    """The body with image and document parts reduced to their type (they are counted by MEDIA_TOKENS)."""
    if not any(isinstance(part, dict) and part.get("type") in MEDIA_TOKENS for part in _parts(body)):
        return body

    def part(value: Any) -> Any:
        return {"type": value["type"]} if isinstance(value, dict) and value.get("type") in MEDIA_TOKENS else value

    def message(value: Any) -> Any:
        if isinstance(value, dict) and isinstance(value.get("content"), list):
            return {**value, "content": [part(item) for item in value["content"]]}
        return value

    return {**body, "messages": [message(item) for item in body["messages"]]}
