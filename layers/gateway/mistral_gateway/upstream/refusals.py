"""What a ValueError out of an SDK call means: the SDK refused the request, or Mistral's answer was unreadable.

The mistralai SDK validates a request with pydantic before sending it, and raises a ValueError (pydantic's
ValidationError) for one it refuses; it raises the same kinds of errors when it cannot parse an answer.
Only the second says anything about Mistral, so only it may reach the circuit breaker. The raw-response
hook tells them apart: no response received for this attempt means nothing was sent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from mistral_gateway.platform.errors import GatewayError, RequestValidationFailed, UpstreamError

MAX_MESSAGE_CHARS = 500


@dataclass(frozen=True)
class Unreadable:
    kind: str | None  # the UpstreamErrors kind; None: Mistral was never asked (the breaker must not learn)
    error: GatewayError


def classify(error: Exception, response: Any | None) -> Unreadable:
    if response is None:
        message, param = sdk_message(error)
        refused = f"The request cannot be sent to Mistral: {message}"
        return Unreadable(None, RequestValidationFailed(refused, param=param, code="sdk_refused"))
    if _is_json_object(response):
        # Mistral answered well-formed JSON this SDK cannot model: about this request, not Mistral's health.
        return Unreadable("unexpected_shape", UpstreamError("Mistral's answer did not have the expected shape."))
    return Unreadable("garbage", UpstreamError("Mistral returned an answer the gateway could not read."))


def sdk_message(error: Exception) -> tuple[str, str | None]:
    """A short message for the caller (never the input values, which pydantic would echo) and the field."""
    errors = getattr(error, "errors", None)
    if callable(errors):
        try:
            problems = errors(include_url=False, include_input=False)
        except TypeError:
            problems = []
        if problems:
            first = problems[0]
            names = [part for part in first.get("loc", ()) if isinstance(part, str) and part.isidentifier()]
            where = ".".join(names[1:] if names[:1] == ["body"] else names)
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            return f"{where or 'body'}: {first.get('msg', 'invalid')}{more}"[:MAX_MESSAGE_CHARS], (
                names[-1] if names else None
            )
    return (str(error) or type(error).__name__)[:MAX_MESSAGE_CHARS], None


def _is_json_object(response: Any) -> bool:
    try:
        return response.status_code < 300 and isinstance(json.loads(response.content), dict)
    except Exception:  # unread, undecodable or not JSON: not an answer the gateway can use
        return False
