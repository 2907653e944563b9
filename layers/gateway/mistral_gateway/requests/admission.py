"""Which requests may be looked up in the cache without pydantic: the common, simple ones that are certainly valid.

Every request is validated before the cache lookup, so a hit is only ever served to a request that would have
passed validation, and the key is computed over the validated form (`1.0` and `1` share an entry). pydantic and
the request models cost a cold container ~90 ms to import, which a cache hit used to avoid. So the simple
shapes most callers send (text messages and the usual sampling fields) are recognised here, by plain Python,
as certainly valid; they skip pydantic until a miss needs the SDK arguments. Anything else (tools, content
parts, a float where an int goes, an OpenAI field name, a null...) is validated by pydantic before the lookup.

This check may refuse to vouch for a valid request (it then pays for pydantic), but it must never vouch for
an invalid one, and what it vouches for must key exactly as the validated form: a property test holds it to
both against the models. The size caps live here so that both sides share them.
"""

from __future__ import annotations

import math
from typing import Any

# Size caps (on top of MAX_BODY_BYTES): generous for real use, and each gets a 422 naming the field.
MAX_MESSAGES = 2_048
MAX_TEXT_CHARS = 500_000  # one message's text, one FIM prompt or suffix, one embedding input
MAX_OUTPUT_TOKENS = 262_144  # the largest context of any Mistral model
MAX_EMBEDDING_INPUTS = 2_048
MAX_MODEL_CHARS = 256


def _real(low: float, high: float) -> Any:
    def check(value: Any) -> bool:
        return (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and math.isfinite(value)
            and low <= value <= high
        )

    return check


def _whole(low: int, high: int) -> Any:
    return lambda value: isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _text(value: Any) -> bool:
    return isinstance(value, str) and len(value) <= MAX_TEXT_CHARS


def _model(value: Any) -> bool:
    return isinstance(value, str) and 1 <= len(value) <= MAX_MODEL_CHARS


def _stop(value: Any) -> bool:
    return isinstance(value, str) or (isinstance(value, list) and all(isinstance(item, str) for item in value))


def _boolean(value: Any) -> bool:
    return isinstance(value, bool)


def _messages(value: Any) -> bool:
    return (
        isinstance(value, list)
        and 1 <= len(value) <= MAX_MESSAGES
        and all(
            isinstance(message, dict)
            and message.keys() == {"role", "content"}
            and message["role"] in ("system", "user", "assistant")
            and _text(message["content"])
            for message in value
        )
    )


def _inputs(value: Any) -> bool:
    return _text(value) or (
        isinstance(value, list) and 1 <= len(value) <= MAX_EMBEDDING_INPUTS and all(_text(item) for item in value)
    )


_SAMPLING = {
    "model": _model,
    "temperature": _real(0.0, 2.0),
    "top_p": _real(0.0, 1.0),
    "max_tokens": _whole(0, MAX_OUTPUT_TOKENS),
    "min_tokens": _whole(0, MAX_OUTPUT_TOKENS),
    "stream": _boolean,
    "stop": _stop,
    "random_seed": _whole(0, 2**63),
}
# Per request model: field -> check; the fields a certified request must have.
_SHAPES: dict[str, tuple[dict[str, Any], frozenset[str]]] = {
    "ChatCompletionRequest": (
        {
            **_SAMPLING,
            "messages": _messages,
            "presence_penalty": _real(-2.0, 2.0),
            "frequency_penalty": _real(-2.0, 2.0),
            "n": _whole(1, 128),
            "safe_prompt": _boolean,
        },
        frozenset({"model", "messages"}),
    ),
    "FIMCompletionRequest": ({**_SAMPLING, "prompt": _text, "suffix": _text}, frozenset({"model", "prompt"})),
    "EmbeddingRequest": (
        {"model": _model, "input": _inputs, "encoding_format": lambda value: value in ("float", "base64")},
        frozenset({"model", "input"}),
    ),
}


def certainly_valid(request_model: str, body: dict[str, Any]) -> bool:
    """True only for a body the pydantic model would accept unchanged (so it keys as its validated form)."""
    fields, required = _SHAPES[request_model]
    return required <= body.keys() and all(name in fields and fields[name](value) for name, value in body.items())


# The OpenAI SDK's names (dialect.py), as models.OpenAIDialectFields checks them.
_OPENAI_FIELDS = {
    "seed": _whole(0, 2**63),
    "max_completion_tokens": _whole(0, MAX_OUTPUT_TOKENS),
    "stream_options": lambda value: isinstance(value, dict),
    "user": lambda value: value is None or (isinstance(value, str) and len(value) <= 512),
    "safety_identifier": lambda value: value is None or (isinstance(value, str) and len(value) <= 512),
    "store": lambda value: value is None or isinstance(value, bool),
}


def openai_fields_certainly_valid(body: dict[str, Any]) -> bool:
    """True only if the OpenAI-named fields present would pass OpenAIDialectFields (the OpenAI SDK's usual
    `stream_options: {"include_usage": true}` then costs no pydantic on a hit)."""
    return all(check(body[name]) for name, check in _OPENAI_FIELDS.items() if name in body)
