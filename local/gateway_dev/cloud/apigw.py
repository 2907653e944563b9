"""HTTP request -> API Gateway REST proxy event, and Lambda proxy result -> HTTP response.

No library does this translation outside SAM CLI's Docker path, so it is written here, kept small and
tested. The event has the shape API Gateway sends (version 1.0 proxy integration): single and multi-value
headers and query strings, path parameters, a request context with a fresh request id, the stage and the
caller's API key id.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl


def proxy_event(
    method: str,
    path: str,
    *,
    resource: str | None = None,
    path_parameters: dict[str, str] | None = None,
    query_string: str = "",
    headers: Iterable[tuple[str, str]] = (),
    body: bytes | str | None = None,
    stage: str = "prod",
    api_key_id: str | None = None,
    source_ip: str = "127.0.0.1",
) -> dict[str, Any]:
    header_list = list(headers)
    multi_headers: dict[str, list[str]] = {}
    for name, value in header_list:
        multi_headers.setdefault(name, []).append(value)
    query = parse_qsl(query_string, keep_blank_values=True)
    multi_query: dict[str, list[str]] = {}
    for name, value in query:
        multi_query.setdefault(name, []).append(value)

    encoded_body, is_base64 = _body(body)
    request_id = str(uuid.uuid4())
    now = time.time()
    identity: dict[str, Any] = {"sourceIp": source_ip, "userAgent": _first(multi_headers, "user-agent")}
    if api_key_id:
        identity["apiKeyId"] = api_key_id
    context: dict[str, Any] = {
        "resourcePath": resource or path,
        "httpMethod": method.upper(),
        "path": f"/{stage}{path}",
        "stage": stage,
        "requestId": request_id,
        "extendedRequestId": request_id,
        "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
        "requestTimeEpoch": int(now * 1000),
        "protocol": "HTTP/1.1",
        "accountId": "123456789012",
        "apiId": "local",
        "identity": identity,
    }
    if api_key_id:
        context["authorizer"] = {"principalId": api_key_id, "apiKeyId": api_key_id}
    return {
        "resource": resource or path,
        "path": path,
        "httpMethod": method.upper(),
        "headers": {name: values[-1] for name, values in multi_headers.items()} or None,
        "multiValueHeaders": multi_headers or None,
        "queryStringParameters": {name: values[-1] for name, values in multi_query.items()} or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": path_parameters or None,
        "stageVariables": None,
        "requestContext": context,
        "body": encoded_body,
        "isBase64Encoded": is_base64,
    }


def proxy_result(result: dict[str, Any]) -> tuple[int, list[tuple[str, str]], bytes]:
    """(status, headers, body) from a Lambda proxy result, as API Gateway would send them."""
    if not isinstance(result, dict) or "statusCode" not in result:
        # API Gateway answers a malformed proxy result with 502.
        return 502, [("Content-Type", "application/json")], b'{"message": "Internal server error"}'
    headers: list[tuple[str, str]] = []
    seen: set[str] = set()
    for name, values in (result.get("multiValueHeaders") or {}).items():
        for value in values:
            headers.append((name, str(value)))
        seen.add(name.lower())
    for name, value in (result.get("headers") or {}).items():
        if name.lower() not in seen:
            headers.append((name, str(value)))
    raw = result.get("body") or ""
    body = base64.b64decode(raw) if result.get("isBase64Encoded") else str(raw).encode()
    return int(result["statusCode"]), headers, body


def _body(body: bytes | str | None) -> tuple[str | None, bool]:
    if body is None or body in (b"", ""):
        return None, False
    if isinstance(body, str):
        return body, False
    try:
        return body.decode("utf-8"), False
    except UnicodeDecodeError:
        return base64.b64encode(body).decode(), True


def _first(headers: dict[str, list[str]], name: str) -> str | None:
    for key, values in headers.items():
        if key.lower() == name:
            return values[0]
    return None
