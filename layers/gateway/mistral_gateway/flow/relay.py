"""Mistral's routes relayed with httpx2 under the one retry policy: a `Forward` in, a `Relayed` (raw bytes) out.

Mistral is called with httpx2 directly, not through the SDK: the SDK has no method for most of these routes,
and its import (~200 ms) would land on cold starts that do not need it. Calls share upstream/retry.py's policy,
deadline, circuit breaker, metrics and X-Ray subsegment with the SDK's calls.

What Mistral answers is relayed byte for byte when it is a 2xx the gateway can read or a 4xx (Mistral refusing
the request). Anything else (5xx after retries, 3xx, a 2xx HTML page or a JSON type that does not parse) is a
502 and is never cached.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import quote

from mistral_gateway.container import current, settings
from mistral_gateway.platform import economics
from mistral_gateway.platform.deadline import Deadline
from mistral_gateway.platform.errors import InvalidRequest, UpstreamError, UpstreamRejected
from mistral_gateway.requests import http
from mistral_gateway.requests.http import CacheControl, parse_json_body

# Caller headers Mistral needs to read the body and shape the answer; nothing else is forwarded (the caller's
# key, cookies and proxies' headers stay here).
FORWARDED_HEADERS = ("content-type", "accept", "accept-language")


# Mistral's answer headers worth relaying (its rate-limit headers describe the gateway's key, not the caller's).
RELAYED_HEADERS = ("content-disposition",)


_TEXT_TYPES = re.compile(r"^\s*(application/([\w.+-]+\+)?json|text/event-stream|text/plain)", re.IGNORECASE)


_JSON_TYPE = re.compile(r"^\s*application/([\w.+-]+\+)?json", re.IGNORECASE)


@dataclass(frozen=True)
class Forward:
    """One caller request for Mistral, however it arrived."""

    method: str
    subpath: str  # the path after /v1/, e.g. "ocr" or "files/abc/content"
    query: str  # the raw query string, without "?"
    headers: Mapping[str, str]  # lower-case names
    body: bytes | None
    caller: str | None
    control: CacheControl
    deadline: Deadline


@dataclass(frozen=True)
class Relayed:
    status: int
    content_type: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def is_text(self) -> bool:
        return bool(_TEXT_TYPES.match(self.content_type))


# Pass-through routes whose answer is a completion bounded by `max_tokens` (as chat's).
CAPPABLE_ROUTES = frozenset({"agents/completions"})


def edge_json(request: Forward) -> dict[str, Any]:
    """The JSON body the route's policies (models, budgets) read, held to the edge limits first (size, nesting,
    Unicode, numbers: http.parse_json_body), so no body reaches them that could make them fail. A body that is
    not JSON by its type (a multipart upload, audio, a PDF) is relayed as it is and read as {}."""
    content_type = request.headers.get("content-type")
    if not request.body or (content_type and not http.is_json_media(content_type)):
        return {}
    return parse_json_body(request.body, content_type, max_bytes=settings().max_body_bytes)


class RelayedRejection(UpstreamRejected):
    """Mistral's 4xx on a cached route: relayed as Mistral sent it, and (like every failure) never stored."""

    def __init__(self, relayed: Relayed) -> None:
        try:
            upstream_body = json.loads(relayed.body)
        except ValueError:
            upstream_body = None
        super().__init__(relayed.status, upstream_body, "Mistral rejected the request.")


def relay(request: Forward) -> Relayed:
    """Send the request to Mistral under the retry policy; Mistral's 2xx (readable) or 4xx, or a GatewayError."""
    from mistral_gateway.upstream import retry as upstream

    url = upstream_url(request.subpath, request.query)
    headers = {name: request.headers[name] for name in FORWARDED_HEADERS if request.headers.get(name)}
    client = shared_client()  # built before the clock starts, as for the SDK

    def attempt(timeout_ms: int) -> Relayed:
        headers["authorization"] = f"Bearer {current().keys.mistral()}"
        response = client.request(request.method, url, content=request.body, headers=headers, timeout=timeout_ms / 1000)
        status = response.status_code
        if status in upstream.RETRYABLE_STATUSES or status == 401 or not (200 <= status < 300 or 400 <= status < 500):
            # call() retries 429/5xx, re-reads the key once on 401, and makes anything else not 2xx/4xx a 502.
            raise upstream.StatusFailure(status, response.headers, response.content)
        content_type = response.headers.get("content-type", "application/octet-stream")
        relayed = Relayed(
            status,
            content_type,
            response.content,
            {name.title(): response.headers[name] for name in RELAYED_HEADERS if name in response.headers},
        )
        if 200 <= status < 300:
            readable(relayed)
        return relayed

    return upstream.call(
        attempt,
        request.deadline,
        via=current().upstream(upstream.MISTRAL),
        operation="passthrough",
        model=circuit_target(request.body),
        generates=request.method != "GET",
    )


def circuit_target(raw: bytes | None) -> str | None:
    """Whose circuit a relayed call counts on (circuit.Circuits): the body's model, or its agent; None (the
    upstream-wide circuit) for a request that names neither."""
    body = _json_or_empty(raw)
    for field_name, prefix in (("model", ""), ("agent_id", "agent:")):
        value = body.get(field_name)
        if isinstance(value, str) and value:
            return prefix + value
    return None


def upstream_url(subpath: str, query: str) -> str:
    path = quote(checked_path(subpath), safe="/:@!$&'()*+,;=-._~")
    return f"{settings().server_url}/v1/{path}" + (f"?{query}" if query else "")


def checked_path(subpath: str) -> str:
    """The sub-path without its outer slashes; empty, `.` and `..` segments are a 400 (no climbing out of /v1)."""
    segments = subpath.strip("/").split("/")
    if any(segment in ("", ".", "..") for segment in segments):
        raise InvalidRequest(f"/v1/{subpath} is not a valid path.")
    return "/".join(segments)


def readable(relayed: Relayed) -> None:
    """A 2xx the caller can use: HTML (a proxy's error page) or a JSON type that does not parse is Mistral failing."""
    if relayed.content_type.lower().lstrip().startswith("text/html"):
        raise UpstreamError("Mistral answered with an HTML page instead of an API answer.")
    if _JSON_TYPE.match(relayed.content_type) and relayed.body:
        try:  # any JSON value: some account routes answer a list (agents, conversations, an agent's versions)
            json.loads(relayed.body)
        except ValueError:
            raise UpstreamError("Mistral returned an answer the gateway could not read.") from None


def json_object(relayed: Relayed) -> dict[str, Any]:
    """The answer as a JSON object, or a 502: a cached answer must be one."""
    try:
        data = json.loads(relayed.body)
    except ValueError:
        raise UpstreamError("Mistral returned an answer the gateway could not read.") from None
    if not isinstance(data, dict):
        raise UpstreamError("Mistral returned an answer the gateway could not read.")
    return data


def _json_or_empty(raw: bytes | None) -> dict[str, Any]:
    """A JSON object body, or {} (multipart, binary, no body): what budgets estimate from."""
    try:
        data = json.loads(raw) if raw else {}
    except (ValueError, UnicodeDecodeError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def answer_fields(relayed: Relayed) -> dict[str, Any]:
    """The answer's JSON object; for a buffered stream (agents, conversations), its events' fields merged, so
    the usage the last event reports is metered like a JSON answer's."""
    if not relayed.content_type.lower().startswith("text/event-stream"):
        return _json_or_empty(relayed.body)
    merged: dict[str, Any] = {}
    for line in relayed.body.splitlines():
        if line.startswith(b"data:"):
            event = _json_or_empty(line[5:].strip())
            merged.update({key: value for key, value in event.items() if value is not None})
    return merged


def token_usage_of(data: dict[str, Any]) -> dict[str, int]:
    return economics.token_usage(data.get("usage"))


def shared_client() -> Any:
    return current().http_client("passthrough", _new_client)


def _new_client() -> Any:
    import httpx2

    return httpx2.Client(follow_redirects=False, headers={"user-agent": "mistral-gateway"})


def internal(request: Forward, method: str, subpath: str, query: str = "") -> Forward:
    """A gateway-made call to Mistral on behalf of `request` (same deadline), without the caller's body."""
    return replace(
        request, method=method, subpath=subpath, query=query, body=None, headers={"accept": "application/json"}
    )
