"""Every Mistral route without a handler of its own: checked against routes_policy, then cached or relayed.

Transport-agnostic on purpose: `handle(Forward)` takes what any front end can build (an API Gateway event here,
an ASGI request in a streaming function later) and gives back a `Relayed` answer with raw bytes. Mistral is
called with httpx2 directly, not through the SDK: the SDK has no method for most of these routes, and its
import (~200 ms) would land on cold starts that do not need it. Calls share upstream.call's retry policy,
deadline, circuit breaker, metrics and X-Ray subsegment with the SDK's calls.

What Mistral answers is relayed byte for byte when it is a 2xx the gateway can read or a 4xx (Mistral refusing
the request). Anything else (5xx after retries, 3xx, a 2xx HTML page or a JSON type that does not parse) is a
502 and is never cached.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import quote

from mistral_gateway import economics, http, observability, routes_policy, secret
from mistral_gateway.container import current, settings
from mistral_gateway.deadline import Deadline
from mistral_gateway.errors import Forbidden, InvalidRequest, NotFound, UpstreamError, UpstreamRejected
from mistral_gateway.http import CacheControl, parse_json_body
from mistral_gateway.observability import logger
from mistral_gateway.routes_policy import Policy

# Caller headers Mistral needs to read the body and shape the answer; nothing else is forwarded (the caller's
# key, cookies and proxies' headers stay here).
FORWARDED_HEADERS = ("content-type", "accept", "accept-language")
# Mistral's answer headers worth relaying (its rate-limit headers describe the gateway's key, not the caller's).
RELAYED_HEADERS = ("content-disposition",)
_TEXT_TYPES = re.compile(r"^\s*(application/([\w.+-]+\+)?json|text/event-stream|text/plain)", re.IGNORECASE)
_JSON_TYPE = re.compile(r"^\s*application/([\w.+-]+\+)?json", re.IGNORECASE)


class AccountRoutesOff(Forbidden):
    def __init__(self, path: str) -> None:
        super().__init__(
            f"{path} is one of Mistral's account endpoints, which this gateway's operator turned off "
            "(template parameter AccountRoutes=off). With AccountRoutes=owned (the default) each caller uses "
            "only the files, jobs, agents and conversations it created through the gateway.",
            code="account_routes_off",
        )


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


def handle(request: Forward, relaying: Callable[[Forward], Relayed] | None = None) -> Relayed:
    """Apply the route's policy: 403 (account routes, unless enabled), the cache, or a plain relay.
    `relaying` replaces budgeted_relay where Mistral streams (account_streams.py: the same policies, streamed)."""
    relaying = relaying or budgeted_relay
    checked_path(request.subpath)  # before the policy: "ocr/../files" must not pass as OCR
    if (elsewhere := routes_policy.NOT_MISTRAL.get(request.subpath.strip("/"))) is not None:
        raise NotFound(elsewhere, code="not_a_mistral_route")
    rule = routes_policy.rule_for(request.method, request.subpath)
    logger.append_keys(upstream_route=rule.prefix or "unlisted", route_policy=rule.policy.name.lower())
    observability.count_by(observability.PASSTHROUGH_REQUESTS, "policy", rule.policy.name.lower())
    if rule is routes_policy.INFERENCE_SUBPATH:  # whatever the mode: /v1/ocr/files is not OCR's to relay
        raise NotFound(f"No route for {request.method} /v1/{request.subpath.strip('/')}.")
    mode = settings().account_routes
    if rule is routes_policy.UNLISTED and mode != "shared":
        raise NotFound(f"No route for {request.method} /v1/{request.subpath.strip('/')}.")
    if rule.policy is Policy.ACCOUNT:
        if mode == "shared":
            return relaying(request)
        if mode != "owned":
            raise AccountRoutesOff(f"/v1/{request.subpath.strip('/')}")
        from mistral_gateway import owned

        return owned.handle(request, relaying)
    if mode == "owned":  # inference that names account resources (OCR's file_id, an agent_id, an ft: model)
        from mistral_gateway import owned

        owned.check_body_references(request)
    if rule.policy is Policy.CACHED:
        return cached_inference(rule.prefix, request)
    if not request.body:  # every inference route takes a body (JSON or an upload): Mistral would refuse it
        raise InvalidRequest("The request body is empty; send a JSON object.")
    return relaying(request)


# Pass-through routes whose answer is a completion bounded by `max_tokens` (as chat's).
CAPPABLE_ROUTES = frozenset({"agents/completions"})


def budgeted_relay(request: Forward) -> Relayed:
    """A relay that counts against the caller's budgets (quota.py) like chat: one request, and the tokens the
    answer reports (reserved from the JSON body's text beforehand; 429 when spent)."""
    body = edge_json(request)
    from mistral_gateway import prompt_cache

    request = replace(request, body=prompt_cache.namespaced_body(request.subpath, request.body, request.caller))
    if "model" in body:
        from mistral_gateway import service

        service.check_model(body)  # AllowedModels holds on every route that names a model
    # Routes that generate with chat's fields get chat's cap (quota.py) when their body is JSON.
    cappable = request.method == "POST" and request.subpath.strip("/") in CAPPABLE_ROUTES and bool(body)
    with current().budgets.spending(request.caller, body, cappable=cappable) as spending:
        if spending.cap is not None:
            request = replace(request, body=json.dumps({**body, "max_tokens": spending.cap}).encode())
        relayed = relay(request)
        answer = _answer_fields(relayed)
        usage = _usage(answer)
        spending.settle(usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0))
    # Usage and cost headers and metrics, as on chat (the answer names the model, e.g. an agent's).
    priced = economics.headers_and_metrics(answer.get("model") or body.get("model"), "MISS", usage)
    return replace(relayed, headers={**relayed.headers, **spending.headers, **priced})


def edge_json(request: Forward) -> dict[str, Any]:
    """The JSON body the route's policies (models, budgets) read, held to the edge limits first (size, nesting,
    Unicode, numbers: http.parse_json_body), so no body reaches them that could make them fail. A body that is
    not JSON by its type (a multipart upload, audio, a PDF) is relayed as it is and read as {}."""
    content_type = request.headers.get("content-type")
    if not request.body or (content_type and not http.is_json_media(content_type)):
        return {}
    return parse_json_body(request.body, content_type, max_bytes=settings().max_body_bytes)


def cached_inference(prefix: str, request: Forward) -> Relayed:
    """OCR, moderations, classifications: the cache flow of chat, keyed on the canonical JSON body.

    A document or image given by http(s) URL is not cached (X-Cache: BYPASS): what is behind a URL can change,
    and fetching it here to hash it would double the download inside the 29 s limit. Inline (data: URI) and
    uploaded (file_id) documents are content-addressed, so they are cached.
    """
    from mistral_gateway import service

    body = parse_json_body(request.body, request.headers.get("content-type"), max_bytes=settings().max_body_bytes)
    service.check_model(body)
    control = request.control
    if references_remote_content(body):
        logger.append_keys(cache_skipped="remote_url")
        control = CacheControl(read=False, store=False)

    def prepare() -> service.Fetch:
        def fetch() -> service.Fetched:
            relayed = relay(request)
            if relayed.status >= 400:
                raise RelayedRejection(relayed)
            data = json_object(relayed)
            return service.Fetched(relayed.body, _usage(data), complete=True)

        return fetch

    canonical = {key: value for key, value in body.items() if value is not None}
    answer = service.through_cache(
        f"v1/{prefix}", canonical, request.caller, control, prepare, request.deadline, charged=body
    )
    headers = {"X-Cache": answer.cache_status, **answer.headers}
    headers.update(economics.headers_and_metrics(body.get("model"), answer.cache_status, answer.usage))
    return Relayed(200, "application/json", answer.body.encode(), headers)


def references_remote_content(value: Any, name: str = "") -> bool:
    """Whether the body points at content anywhere but inline: a string in any field named `...url`
    (document_url, image_url, image_url.url...) that is not a `data:` URI. URL parsers forgive a leading
    space, a tab inside the scheme (" http://", "h\ttp://"), a scheme left out ("//host") and other schemes
    (file:, ftp:), so the one content-addressed form is trusted rather than a list of remote ones."""
    if isinstance(value, dict):
        return any(references_remote_content(item, str(key)) for key, item in value.items())
    if isinstance(value, list):
        return any(references_remote_content(item, name) for item in value)
    return name.lower().endswith("url") and isinstance(value, str) and value[:5].lower() != "data:"


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
    from mistral_gateway import upstream

    url = upstream_url(request.subpath, request.query)
    headers = {name: request.headers[name] for name in FORWARDED_HEADERS if request.headers.get(name)}
    client = _client()  # built before the clock starts, as for the SDK

    def attempt(timeout_ms: int) -> Relayed:
        headers["authorization"] = f"Bearer {secret.mistral_api_key()}"
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
            _readable(relayed)
        return relayed

    return upstream.call(
        attempt,
        request.deadline,
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


def _readable(relayed: Relayed) -> None:
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


def _answer_fields(relayed: Relayed) -> dict[str, Any]:
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


def _usage(data: dict[str, Any]) -> dict[str, int]:
    return economics.token_usage(data.get("usage"))


def _client() -> Any:
    return current().http_client("passthrough", _new_client)


def _new_client() -> Any:
    import httpx2

    return httpx2.Client(follow_redirects=False, headers={"user-agent": "mistral-gateway"})
