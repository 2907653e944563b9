"""The streaming function: chat, FIM and Responses completions, streamed event by event (an ASGI app under uvicorn).

In Lambda it runs behind the Lambda Web Adapter (`run.sh`), which turns each API Gateway streaming
invocation into an HTTP request and hands over API Gateway's request context (`x-amzn-request-context`),
the Lambda context (`x-amzn-lambda-context`) and the trace id (`x-amzn-trace-id`) as headers. `make serve`
runs this same app for the routes template.yaml marks for streaming.

A request goes: route -> mistral_gateway.flow.streaming (streamed) or flow.completions (plain) -> flow/answers.py
(cache) -> upstream/. Both forms get the streaming function's longer deadline. Conversations (start, append,
restart) and agents completions with `"stream": true` go through the pass-through's policies and stream event by event
(mistral_gateway.flow.account.streams); without it they are relayed whole.

Long-running routes that are not streams live here too, for that deadline (issue 21): the gateway's batch of chat
completions and the pass-through routes that generate (agents completions). On the buffered function they had
API Gateway's 29 s, so any long answer became a timeout; here they have StreamMaxMs, as chat has.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from mistral_gateway import container
from mistral_gateway.edge import cors
from mistral_gateway.edge.served import request_served
from mistral_gateway.flow import completions, live_stream, streaming
from mistral_gateway.platform import after_response, observability
from mistral_gateway.platform.errors import GatewayError, MethodNotAllowed, NotFound
from mistral_gateway.platform.observability import logger, metrics
from mistral_gateway.policies import key_policy
from mistral_gateway.requests.http import GatewayRequest, caller_id

EVENT_STREAM = "text/event-stream"
READINESS_PATH = "/ready"  # the Web Adapter's AWS_LWA_READINESS_CHECK_PATH (template.yaml)
# Headers that keep proxies from buffering or transforming the stream.
STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
_cold_start = True
# This Lambda container's state (settings, clients, stores, circuits), built once on this cold start.
container.start()
if container.current().settings.store_after_response:
    after_response.start_extension()  # in Lambda only: a plain answer first, its store after (after_response.py)


@dataclass(frozen=True)
class AdapterContext:
    """The Lambda context the Web Adapter hands over as a header: what the deadline and logs need."""

    function_name: str
    aws_request_id: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    deadline_epoch_ms: float | None

    @classmethod
    def from_header(cls, header: str | None) -> AdapterContext:
        data = _json_object(header)
        env = data.get("env_config")
        env = env if isinstance(env, dict) else {}  # the adapter's, but never trusted to be well formed
        memory, deadline = env.get("memory"), data.get("deadline")
        return cls(
            function_name=str(env.get("function_name") or os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "local")),
            aws_request_id=str(data.get("request_id") or ""),
            invoked_function_arn=str(data.get("invoked_function_arn") or ""),
            memory_limit_in_mb=memory if isinstance(memory, int) and not isinstance(memory, bool) else 0,
            deadline_epoch_ms=float(deadline) if isinstance(deadline, int | float) else None,
        )

    def get_remaining_time_in_millis(self) -> int:
        if self.deadline_epoch_ms is None:
            return 2**31
        return max(0, int(self.deadline_epoch_ms - time.time() * 1000))


async def ready(_: Request) -> Response:
    """The Web Adapter's readiness check: touches nothing remote (it runs on every cold start)."""
    return Response("ready", media_type="text/plain")


async def chat_completions(request: Request) -> Response:
    return await _completion(request, "chat")


async def fim_completions(request: Request) -> Response:
    return await _completion(request, "fim")


async def batch_chat_completions(request: Request) -> Response:
    return await _completion(request, "batch")


async def passthrough(request: Request) -> Response:
    return await _completion(request, "passthrough")


async def create_response(request: Request) -> Response:
    return await _completion(request, "responses")


async def _completion(request: Request, route: str) -> Response:
    started = time.perf_counter()
    try:
        raw = await request.body()
    except ClientDisconnect:  # the caller hung up while sending: nobody to answer, nothing went upstream
        return Response(status_code=400)
    event = {"requestContext": _json_object(request.headers.get("x-amzn-request-context"))}
    context: AdapterContext = request.state.lambda_context  # read once, by `app`
    _begin(request, event, context)
    served: dict[str, Any] = {
        "method": observability.bounded(request.method),
        "route": observability.bounded(request.url.path),
        "caller": caller_id(event),
    }
    try:
        outcome = await anyio.to_thread.run_sync(_serve, request.headers, raw, event, context, route, request.url.path)
    except GatewayError as error:
        return _finish(_error_response(error), served, started)
    except Exception as unexpected:
        observability.log_unexpected("unexpected error", unexpected)
        failure = GatewayError("The gateway failed unexpectedly; the request can be retried.")
        return _finish(_error_response(failure), served, started)
    if isinstance(outcome, live_stream.LiveStream):  # chat, FIM, responses, and streamed pass-through routes
        return StreamingResponse(
            _forward(outcome, served, started),
            status_code=200,
            media_type=EVENT_STREAM,
            headers={**STREAM_HEADERS, **outcome.headers},
        )
    if route == "passthrough":  # a Relayed (passthrough.py, imported only by the routes that use it)
        relayed = Response(
            outcome.body, status_code=outcome.status, media_type=outcome.content_type, headers=outcome.headers
        )
        return _finish(relayed, served, started)
    response = Response(
        outcome.body,
        status_code=outcome.status,
        media_type=outcome.content_type,
        headers={"X-Cache": outcome.cache_status, **outcome.headers},
    )
    return _finish(response, served, started)


def _serve(headers: Any, raw: bytes, event: dict[str, Any], context: AdapterContext, route: str, path: str = "") -> Any:
    """Everything before the first byte (blocking work, in a worker thread)."""
    config = container.current().settings
    if route == "passthrough":
        key_policy.admit(caller_id(event), container.current().budgets)  # expired: 401; the key's models
        return _relay(headers, raw, event, context, path, config.stream_max_ms)
    item_list = "requests" if route == "batch" else None
    request = GatewayRequest.from_parts(
        headers, raw, event, context, config, deadline_ms=config.stream_max_ms, item_list=item_list
    )
    key_policy.admit(request.caller, container.current().budgets)  # expired: 401; the key's models
    if route == "batch":
        return completions.batch_chat(request.body, **request.completion_context)
    if route == "responses":
        from mistral_gateway.flow import responses

        return responses.create(request.body, **request.completion_context)
    if request.body.get("stream") is True:
        return streaming.completion_stream(route, request.body, **request.completion_context)
    complete = completions.chat_completion if route == "chat" else completions.fim_completion
    return complete(request.body, **request.completion_context)


def _relay(
    headers: Any, raw: bytes, event: dict[str, Any], context: AdapterContext, path: str, deadline_ms: int
) -> Any:
    """A pass-through route (routes_policy.py decides, as on the buffered function) under the long deadline."""
    from mistral_gateway.flow import passthrough as relaying
    from mistral_gateway.platform.deadline import Deadline
    from mistral_gateway.requests.http import CacheControl, parse_json_body

    # The edge's limits (size, depth, Unicode) before any policy reads the body: a clear 4xx, never a 500.
    body = parse_json_body(raw, headers.get("content-type"), max_bytes=container.current().settings.max_body_bytes)
    forward = relaying.Forward(
        method="POST",
        subpath=path.removeprefix("/v1/"),
        query="",
        headers={name.lower(): value for name, value in headers.items()},
        body=raw or None,
        caller=caller_id(event),
        control=CacheControl.from_headers(headers),
        deadline=Deadline.start(deadline_ms, context, attempt_ceiling_ms=deadline_ms),
    )
    from mistral_gateway.flow.account import streams as account_streams

    if account_streams.streams(forward.subpath, body):  # conversations and agents completions, event by event
        return account_streams.serve(forward)
    return relaying.handle(forward)


async def _forward(stream: live_stream.LiveStream, served: dict[str, Any], started: float) -> AsyncIterator[bytes]:
    """Mistral's events to the caller as they come. A caller who hangs up ends the upstream stream."""
    events = stream.events()
    sent_all = False
    try:
        while (event := await anyio.to_thread.run_sync(next, events, None)) is not None:
            yield event
        sent_all = True
    finally:
        with anyio.CancelScope(shield=True):
            if not sent_all:
                stream.stop()  # the caller hung up: Mistral stops writing
            outcome = await anyio.to_thread.run_sync(stream.wait, 10.0)
            _log_served({**served, "status": 200, **outcome.log_fields()}, started)


def _begin(request: Request, event: dict[str, Any], context: AdapterContext) -> None:
    """Per-request Powertools state, as the Lambda decorators would set it."""
    global _cold_start
    logger.clear_state()
    logger.set_correlation_id(event["requestContext"].get("requestId") or context.aws_request_id or None)
    logger.append_keys(function_request_id=context.aws_request_id or None, cold_start=_cold_start)
    # X-Ray: the adapter's process has no _X_AMZN_TRACE_ID of its own; one invocation runs at a time.
    os.environ["_X_AMZN_TRACE_ID"] = request.headers.get("x-amzn-trace-id", "")
    if _cold_start:
        _cold_start = False
        metrics.provider.add_cold_start_metric(context)  # type: ignore[arg-type]


def _finish(response: Response, served: dict[str, Any], started: float) -> Response:
    _log_served({**served, "status": response.status_code}, started)
    return response


def _log_served(fields: dict[str, Any], started: float) -> None:
    """The one "request served" line (written when a stream has ended: usage is known only then)."""
    request_served({**fields, "duration_ms": round((time.perf_counter() - started) * 1000, 2)})
    metrics.flush_metrics()


def _error_response(error: GatewayError) -> Response:
    observability.answered_with_error(error.status, error.error_type)
    return Response(
        json.dumps(error.body()), status_code=error.status, media_type="application/json", headers=error.headers
    )


async def _http_error(request: Request, error: Exception) -> Response:
    """Starlette's own 404/405 in Mistral's error shape."""
    status = getattr(error, "status_code", 500)
    path = request.url.path
    failure: GatewayError = (
        MethodNotAllowed(f"Method {request.method} is not allowed on {path}.")
        if status == 405
        else NotFound(f"No route for {request.method} {path}.")
    )
    return _error_response(failure)


def _json_object(header: str | None) -> dict[str, Any]:
    try:
        data = json.loads(header) if header else {}
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


ROUTES: list[tuple[str, Callable[[Request], Any], list[str]]] = [
    ("/v1/chat/completions", chat_completions, ["POST"]),
    ("/v1/fim/completions", fim_completions, ["POST"]),
    ("/v1/batch/chat/completions", batch_chat_completions, ["POST"]),
    ("/v1/agents/completions", passthrough, ["POST"]),
    ("/v1/conversations", passthrough, ["POST"]),
    ("/v1/conversations/{conversation_id}", passthrough, ["POST"]),
    ("/v1/conversations/{conversation_id}/restart", passthrough, ["POST"]),
    ("/v1/responses", create_response, ["POST"]),
    (READINESS_PATH, ready, ["GET"]),
]

routed = Starlette(
    routes=[Route(path, endpoint, methods=methods) for path, endpoint, methods in ROUTES],
    exception_handlers={HTTPException: _http_error},
    # Browsers: the buffered function's CORS policy (mistral_gateway/cors.py), on streams and errors too.
    middleware=[Middleware(CORSMiddleware, **cors.middleware_options())],
)


async def app(scope: Any, receive: Any, send: Any) -> None:
    """The app the Web Adapter's uvicorn serves: each request's work for after its response (a plain miss's
    store, after_response.later) runs once the app has written the whole response, on the post-response
    extension's thread in Lambda. Every invocation hands over, work or none, so the extension always asks for
    the next event; the readiness check (no invocation) hands over nothing. The Lambda context the Web Adapter
    passes is read here, once, for the routes and the hand-over."""
    if scope["type"] != "http":
        await routed(scope, receive, send)
        return
    lambda_context = dict(scope.get("headers") or []).get(b"x-amzn-lambda-context", b"").decode("latin-1")
    context = AdapterContext.from_header(lambda_context)
    scope.setdefault("state", {})["lambda_context"] = context  # the routes' `request.state.lambda_context`
    if not after_response.can_wait_for_the_response():
        await routed(scope, receive, send)  # in Lambda without the extension: stored before the response
        return
    with after_response.collected(counted=after_response.on_threads()) as work:
        try:
            await routed(scope, receive, send)
        finally:
            if scope.get("path") != READINESS_PATH:  # no invocation: nothing to hand over, and no work
                after_response.after_sent(context.aws_request_id, work)
