"""The cloud's payload limits, enforced by the local runner before any function work, answered as the cloud
answers them (API Gateway's DEFAULT_4XX / DEFAULT_5XX gateway responses of template.yaml: Mistral's error
shape).

- API Gateway (REST) takes request bodies up to 10 MB: above that, 413 REQUEST_TOO_LARGE.
- Lambda takes a synchronous invocation's payload up to 6 MB (6,291,456 bytes), request and response: a
  larger event (a body base64-encoded as binary grows by a third) never reaches the function, and API
  Gateway answers 413; a larger proxy result is Lambda failing the invocation, a 502.

The request body is buffered whole here (API Gateway buffers it too), then handed to the app unchanged. A
caller who hangs up while sending it gets nothing and leaves no traceback.
"""

from __future__ import annotations

import base64
import fnmatch
import json
import math
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

API_GATEWAY_MAX_REQUEST_BYTES = 10 * 1024 * 1024
LAMBDA_MAX_PAYLOAD_BYTES = 6 * 1024 * 1024  # 6,291,456: Lambda's synchronous request limit
LAMBDA_MAX_RESPONSE_BYTES = LAMBDA_MAX_PAYLOAD_BYTES + 100  # its response limit is 100 bytes more

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def gateway_error(status: int, message: str, response_type: str) -> bytes:
    """What the template's DEFAULT_4XX / DEFAULT_5XX gateway responses render."""
    error_type = "invalid_request_error" if status < 500 else "gateway_error"
    body = {"object": "error", "message": message, "type": error_type, "param": None, "code": response_type}
    return json.dumps(body).encode()


def too_large(size: int | None, limit: int, what: str) -> bytes:
    """413 REQUEST_TOO_LARGE; `size` None when the body was not read to its end (it is over the limit)."""
    of = f"{size} bytes" if size is not None else f"over {limit} bytes"
    return gateway_error(413, f"Request Too Long: {of}; {what} takes at most {limit}.", "REQUEST_TOO_LARGE")


def event_size(event: dict[str, Any], binary_types: tuple[str, ...]) -> int:
    """The size of the event API Gateway would invoke the function with: a body of one of the API's
    BinaryMediaTypes goes base64-encoded (a third larger), any other as a JSON string."""
    size = len(json.dumps({**event, "body": None}).encode())
    body = event.get("body")
    if body is None:
        return size
    raw = base64.b64decode(body) if event.get("isBase64Encoded") else str(body).encode("utf-8", "surrogatepass")
    headers = {str(name).lower(): str(value) for name, value in (event.get("headers") or {}).items()}
    media = headers.get("content-type", "").split(";")[0].strip().lower()
    if any(fnmatch.fnmatchcase(media, pattern.lower()) for pattern in binary_types):
        return size + 4 * math.ceil(len(raw) / 3)
    return size + len(json.dumps(raw.decode("utf-8", "replace")).encode())


def event_too_large(event: dict[str, Any], binary_types: tuple[str, ...] = ()) -> bytes | None:
    """413 for a proxy event Lambda would refuse to invoke the function with, else None."""
    size = event_size(event, binary_types)
    if size <= LAMBDA_MAX_PAYLOAD_BYTES:
        return None
    return too_large(size, LAMBDA_MAX_PAYLOAD_BYTES, "a Lambda invocation (the event, body base64-encoded if binary)")


def result_too_large(result: dict[str, Any]) -> bytes | None:
    """502 for a proxy result larger than Lambda returns, else None."""
    size = len(json.dumps(result).encode())
    if size <= LAMBDA_MAX_RESPONSE_BYTES:
        return None
    message = f"The function's answer is {size} bytes; Lambda returns at most {LAMBDA_MAX_RESPONSE_BYTES}."
    return gateway_error(502, message, "BAD_GATEWAY")


async def buffered_body(receive: Receive, limit: int = API_GATEWAY_MAX_REQUEST_BYTES) -> tuple[bytes, int] | None:
    """The whole request body and its size, reading at most `limit` + one message past it (the size then says
    it is over), or None when the caller hung up before sending it all."""
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size <= limit:
            parts.append(chunk)
        if not message.get("more_body", False) or size > limit:
            return b"".join(parts), size


def replaying(body: bytes, receive: Receive) -> Receive:
    """A receive that gives the app the buffered body in one message, then whatever the connection says."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def send_error(send: Send, status: int, body: bytes, headers: dict[str, str]) -> None:
    raw_headers = [(b"content-type", b"application/json")]
    raw_headers += [(name.lower().encode(), value.encode()) for name, value in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})
