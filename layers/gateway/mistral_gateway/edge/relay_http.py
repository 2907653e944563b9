"""The pass-through's API Gateway side: a proxy event in, a Forward for passthrough.handle; a Relayed out."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from aws_lambda_powertools.event_handler import Response

from mistral_gateway.container import settings
from mistral_gateway.flow.relay import Forward, Relayed
from mistral_gateway.platform.deadline import Deadline
from mistral_gateway.requests.http import CacheControl, caller_id, raw_body

V1 = "/v1/"


def forward_from_event(event: Any, lambda_context: Any) -> Forward:
    """`event` is Powertools' APIGatewayProxyEvent; its body arrives base64 for the API's BinaryMediaTypes."""
    raw = event.raw_event
    query = urlencode(
        [
            (name, value)
            for name, values in (raw.get("multiValueQueryStringParameters") or {}).items()
            for value in values
        ]
    )
    path = str(raw.get("path") or "")
    return Forward(
        method=str(raw.get("httpMethod") or "GET").upper(),
        subpath=path[len(V1) :] if path.startswith(V1) else path.lstrip("/"),
        query=query,
        headers={name.lower(): value for name, value in (raw.get("headers") or {}).items()},
        body=raw_body(raw),
        caller=caller_id(raw),
        control=CacheControl.parse(event.headers.get("cache-control")),
        deadline=Deadline.start(settings().request_deadline_ms, lambda_context),
    )


def relayed_response(relayed: Relayed) -> Response[Any]:
    """Text answers as text; anything else (audio, file contents) as bytes, which Powertools base64-encodes."""
    body: str | bytes = relayed.body.decode("utf-8", "replace") if relayed.is_text else relayed.body
    return Response(status_code=relayed.status, content_type=relayed.content_type, body=body, headers=relayed.headers)
