"""What the gateway reads from an HTTP request besides the route: the JSON body, the caller, Cache-Control."""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.event_handler import Response

from mistral_gateway.platform.config import Settings
from mistral_gateway.platform.deadline import Deadline
from mistral_gateway.platform.errors import GatewayError, InvalidRequest, PayloadTooLarge, UnsupportedMediaType
from mistral_gateway.requests import limits

MAX_CACHE_AGE_SECONDS = 30 * 86_400
# Steers the answer cache without the ambiguity of the standard header (which proxies and SSE libraries set).
GATEWAY_CACHE_CONTROL = "x-gateway-cache-control"
# JSON media types, plus text/plain and curl's default form type (`curl -d` without -H): the body is still
# parsed as JSON, and anything that is not JSON gets a 400 saying so.
_JSON_MEDIA = re.compile(
    r"^\s*(application/([\w.+-]+\+)?json|text/plain|application/x-www-form-urlencoded)\s*(;.*)?$", re.IGNORECASE
)


def is_json_media(content_type: str) -> bool:
    """Whether a Content-Type is one the gateway reads as JSON (see _JSON_MEDIA)."""
    return bool(_JSON_MEDIA.match(content_type))


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json_body(
    raw: str | bytes | None, content_type: str | None, *, max_bytes: int, item_list: str | None = None
) -> dict[str, Any]:
    """The request body as a JSON object within the limits of limits.py, or a 4xx GatewayError that says what
    is wrong with it. `item_list`: a top-level field whose items the use case checks one by one (a batch)."""
    if content_type and not is_json_media(content_type):
        raise UnsupportedMediaType(f"Content-Type must be application/json, not {content_type.split(';')[0]!r}.")
    if raw is None or raw == "" or raw == b"":
        raise InvalidRequest("The request body is empty; send a JSON object.")
    data = raw if isinstance(raw, bytes) else raw.encode("utf-8", "surrogatepass")
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"The request body is {len(data)} bytes; the limit is {max_bytes}.")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest("The request body is not valid UTF-8.") from None
    try:
        body = json.loads(text, parse_constant=_no_constants)
    except ValueError as error:
        raise InvalidRequest(f"The request body is not valid JSON: {error}.") from None
    except RecursionError:
        raise InvalidRequest(f"The request nests deeper than {limits.MAX_DEPTH} levels.") from None
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    limits.check(body, skip=item_list)
    return body


@dataclass(frozen=True)
class CacheControl:
    """The caller's Cache-Control: `no-cache` skips the lookup, `no-store` skips both, `max-age=N` bounds both."""

    read: bool = True
    store: bool = True
    max_age: int | None = None

    @classmethod
    def parse(cls, header: str | None) -> CacheControl:
        if not header:
            return cls()
        directives = {part.strip().lower() for part in header.split(",") if part.strip()}
        max_age = None
        for directive in directives:
            name, _, value = directive.partition("=")
            if name.strip() == "max-age":
                try:
                    max_age = max(0, min(MAX_CACHE_AGE_SECONDS, int(value.strip().strip('"'))))
                except ValueError:
                    raise InvalidRequest("Cache-Control max-age must be a whole number of seconds.") from None
        no_store = "no-store" in directives
        return cls(
            read=not no_store and "no-cache" not in directives and max_age != 0, store=not no_store, max_age=max_age
        )

    @classmethod
    def from_headers(cls, headers: Any) -> CacheControl:
        """The gateway's own `X-Gateway-Cache-Control` when sent (it always wins), else `Cache-Control` — except
        the `no-store` that SSE libraries (httpx-sse, so LangChain's ChatMistralAI) put on every streamed
        request by default: it is about the HTTP exchange, not a wish to skip the gateway's answer cache."""
        own = headers.get(GATEWAY_CACHE_CONTROL)
        if own is not None:
            return cls.parse(own)
        standard = headers.get("cache-control")
        if standard and standard.strip().lower() == "no-store" and "text/event-stream" in (headers.get("accept") or ""):
            return cls()
        return cls.parse(standard)

    @property
    def bypassed(self) -> bool:
        return not self.read

    def ttl(self, operator_ttl: int) -> int:
        """How long an answer is stored: the caller's max-age may shorten the operator's TTL, never extend it
        (CacheTtlSeconds=0 stores nothing, whatever the caller says)."""
        return operator_ttl if self.max_age is None else max(0, min(self.max_age, operator_ttl))


def caller_id(event: dict[str, Any]) -> str | None:
    """The caller's API key id: set by API Gateway (usage plans) or by our authorizer. Never the key itself."""
    context = event.get("requestContext") or {}
    authorizer = context.get("authorizer") or {}
    for value in (
        authorizer.get("apiKeyId"),
        (context.get("identity") or {}).get("apiKeyId"),
        authorizer.get("principalId"),
    ):
        if isinstance(value, str) and value:
            return value
    return None


def raw_body(event: dict[str, Any]) -> bytes | None:
    """The body exactly as sent: API Gateway base64-encodes bodies it treats as binary."""
    body = event.get("body")
    if body is None:
        return None
    if event.get("isBase64Encoded"):
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidRequest("The request body is not valid base64.") from None
    return body.encode("utf-8", "surrogatepass") if isinstance(body, str) else bytes(body)


# `X-Gateway-Fallbacks` (fallback.py), one value, case and surrounding spaces aside. Anything else is a 400 rather
# than a guess: "off;" or "off, on" (a repeated header joined by a proxy) must not quietly mean "on".
FALLBACKS_HEADER = "x-gateway-fallbacks"
FALLBACKS_ON = frozenset({"on", "true", "1", "yes", "enabled", "auto"})
FALLBACKS_OFF = frozenset({"off", "false", "0", "no", "none", "disabled"})


def fallbacks_allowed(header: str | None) -> bool:
    """Whether the caller lets model fallbacks answer: yes unless it sent one of FALLBACKS_OFF (absent or
    empty: yes); a value in neither set is a 400 naming both."""
    value = (header or "").strip().lower()
    if not value or value in FALLBACKS_ON:
        return True
    if value in FALLBACKS_OFF:
        return False
    raise InvalidRequest(
        f"X-Gateway-Fallbacks must be one of {', '.join(sorted(FALLBACKS_OFF))} (no fallbacks) or "
        f"{', '.join(sorted(FALLBACKS_ON))} (the default); got {(header or '')[:40]!r}.",
        param=FALLBACKS_HEADER,
        code="invalid_header",
    )


@dataclass(frozen=True)
class GatewayRequest:
    """Everything a use case needs from one API Gateway event, parsed and checked."""

    body: dict[str, Any]
    caller: str | None
    control: CacheControl
    deadline: Deadline
    fallbacks: bool = True  # false when the caller sent `X-Gateway-Fallbacks: off` (fallback.py)

    @classmethod
    def from_event(
        cls,
        event: Any,
        lambda_context: Any,
        config: Settings,
        *,
        with_body: bool = True,
        item_list: str | None = None,
    ) -> GatewayRequest:
        """`event` is Powertools' APIGatewayProxyEvent (headers are case-insensitive)."""
        body = raw_body(event.raw_event) if with_body else None
        return cls.from_parts(
            event.headers, body, event.raw_event, lambda_context, config, with_body=with_body, item_list=item_list
        )

    @classmethod
    def from_parts(
        cls,
        headers: Any,
        body: bytes | None,
        event: dict[str, Any],
        lambda_context: Any,
        config: Settings,
        *,
        with_body: bool = True,
        deadline_ms: int | None = None,
        item_list: str | None = None,
    ) -> GatewayRequest:
        """Any transport's request: case-insensitive `headers`, the raw body, and an event-shaped dict whose
        `requestContext` says who the caller is (API Gateway's, handed over by the Lambda Web Adapter). `config`
        gives the body limit and the request's deadline."""
        deadline = Deadline.start(
            deadline_ms or config.request_deadline_ms, lambda_context, attempt_ceiling_ms=deadline_ms
        )
        control = CacheControl.from_headers(headers)
        parsed: dict[str, Any] = {}
        if with_body:
            parsed = parse_json_body(
                body, headers.get("content-type"), max_bytes=config.max_body_bytes, item_list=item_list
            )
        fallbacks = fallbacks_allowed(headers.get(FALLBACKS_HEADER))
        return cls(body=parsed, caller=caller_id(event), control=control, deadline=deadline, fallbacks=fallbacks)

    @property
    def context(self) -> dict[str, Any]:
        """The keyword arguments every use case in flow/ takes."""
        return {"caller": self.caller, "control": self.control, "deadline": self.deadline}

    @property
    def completion_context(self) -> dict[str, Any]:
        """What chat, FIM and batch take besides: whether model fallbacks may answer."""
        return {**self.context, "fallbacks": self.fallbacks}


def json_response(status: int, body: str, headers: dict[str, str] | None = None) -> Response:
    """A JSON answer; the body is passed through as-is (never re-serialised)."""
    return Response(status_code=status, content_type="application/json", body=body, headers=headers or {})


def answer_response(answer: Any) -> Response:
    """A use case's Answer (flow.answers.Answer): its body untouched, its content type, and the X-Cache header."""
    return Response(
        status_code=answer.status,
        content_type=answer.content_type,
        body=answer.body,
        headers={"X-Cache": answer.cache_status, **answer.headers},
    )


def error_response(error: GatewayError) -> Response:
    return json_response(error.status, json.dumps(error.body()), dict(error.headers))
