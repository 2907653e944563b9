"""The gateway's HTTP API: routes and decorators only. The work happens in the layer's `mistral_gateway`.

A request goes: lambda_handler -> edge/middlewares.py (the route's request parsing; the "request served" line)
-> route -> its use case in mistral_gateway/flow/ (completions, embeddings, catalog, responses, passthrough)
-> flow/answers.py (memory, table, single-flight) -> upstream/.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from mistral_gateway import container
from mistral_gateway.edge.cors import cors_config
from mistral_gateway.edge.middlewares import PUBLIC_CACHE, parsed, public_cache, request_served
from mistral_gateway.edge.openapi import DOCS_PATH, ERROR_RESPONSES, SETTINGS, openapi_json
from mistral_gateway.edge.resolver import GatewayResolver
from mistral_gateway.flow import catalog, completions, embeddings
from mistral_gateway.platform import after_response, observability
from mistral_gateway.platform.errors import GatewayError, MethodNotAllowed, NotFound
from mistral_gateway.platform.observability import logger, metrics
from mistral_gateway.policies import key_policy
from mistral_gateway.requests.http import GatewayRequest, answer_response, error_response, json_response


def current_request() -> GatewayRequest:
    """The request `parsed` checked for the current route, its caller key admitted (key_policy.py: an ended key
    is a 401; the models it may use are kept for the request). Admitted once the route holds its request, so the
    read of the key's limits never sits between parsing and the route."""
    parsed_request: GatewayRequest = app.context["request"]
    key_policy.admit(parsed_request.caller, container.current().budgets)
    return parsed_request


def answered(use_case: Callable[..., Any], *path: str, body: bool = True, completion: bool = False) -> Response[str]:
    """The route's use case on the current request: its body (when it takes one), then the path's values, then
    the caller, Cache-Control and deadline (and, for completions, whether fallbacks may answer)."""
    request = current_request()
    context = request.completion_context if completion else request.context
    return answer_response(use_case(*((request.body,) if body else ()), *path, **context))


# This Lambda container's state (settings, clients, stores, circuits), built once on this cold start; the
# shared package reaches it through container.current().
container.start()
if container.current().settings.store_after_response:
    after_response.start_extension()  # in Lambda only: answers first, stores after (after_response.py)
app = GatewayResolver(cors=cors_config())
# What Mistral's own routes share in the OpenAPI document.
MISTRAL_ROUTE: dict[str, Any] = {"tags": ["Mistral API"], "responses": ERROR_RESPONSES}
app.use([request_served])
app.configure_openapi(**SETTINGS)
# The Swagger UI bundle is inlined (no swagger_base_url, so no CDN): /docs works offline and under `make serve`.
app.enable_swagger_on_first_use(path=DOCS_PATH, middlewares=[public_cache])


@app.post(
    "/v1/chat/completions",
    summary="Chat completion",
    middlewares=parsed(),
    **MISTRAL_ROUTE,
    description="Mistral's chat completion; `stream: true` is streamed as Mistral writes it (the streaming "
    "function serves this route in the API; this buffered handler answers it as one SSE body for sam local).",
)
def chat_completions() -> Response[str]:
    return answered(completions.chat_completion, completion=True)


@app.post("/v1/fim/completions", summary="Fill-in-the-middle completion", middlewares=parsed(), **MISTRAL_ROUTE)
def fim_completions() -> Response[str]:
    return answered(completions.fim_completion, completion=True)


@app.post(
    "/v1/embeddings",
    summary="Embeddings",
    middlewares=parsed(),
    **MISTRAL_ROUTE,
    description="`encoding_format: base64` gives little-endian float32 vectors, as the OpenAI SDK expects.",
)
def create_embeddings() -> Response[str]:
    return answered(embeddings.embeddings)


@app.get("/v1/models", summary="List models", middlewares=parsed(with_body=False), **MISTRAL_ROUTE)
def models() -> Response[str]:
    return answered(catalog.list_models, body=False)


@app.get("/v1/models/<model_id>", summary="Retrieve a model", middlewares=parsed(with_body=False), **MISTRAL_ROUTE)
def model(model_id: str) -> Response[str]:
    return answered(catalog.retrieve_model, model_id, body=False)


@app.post(
    "/v1/batch/chat/completions",
    summary="Several chat completions in one call",
    tags=["Gateway"],
    responses=ERROR_RESPONSES,
    middlewares=parsed(item_list="requests"),
    description='`{"requests": [chat requests]}` answered in order, each with its own status and cache.',
)
def batch_chat_completions() -> Response[str]:
    return answered(completions.batch_chat, completion=True)


@app.post(
    "/v1/agents/completions",
    summary="Agents completion",
    **MISTRAL_ROUTE,
    description="Mistral's agents completion, relayed as sent (`agent_id`, `messages`). The streaming function "
    "serves this route in the API, for its longer deadline (StreamMaxMs); this buffered handler answers it for "
    "sam local.",
)
def agents_completions() -> Response[Any]:
    return _relay_current()


# Conversations: explicit API Gateway resources, because their POSTs (start, append, restart) stream on the
# streaming function; this buffered handler answers every method of them (sam local, and GET/DELETE in the API).
CONVERSATION_ROUTE: dict[str, Any] = {
    **MISTRAL_ROUTE,
    "description": "Mistral's conversations, each caller's own (AccountRoutes=owned). A POST with `stream: true` "
    "streams event by event on the streaming function; this buffered handler answers it as one SSE body.",
}


@app.route("/v1/conversations", method=["GET", "POST"], summary="Start or list conversations", **CONVERSATION_ROUTE)
@app.route(
    "/v1/conversations/<conversation_id>",
    method=["GET", "POST", "DELETE"],
    summary="Read, append to or delete a conversation",
    **CONVERSATION_ROUTE,
)
@app.get("/v1/conversations/<conversation_id>/history", summary="A conversation's entries", **CONVERSATION_ROUTE)
@app.get("/v1/conversations/<conversation_id>/messages", summary="A conversation's messages", **CONVERSATION_ROUTE)
@app.post("/v1/conversations/<conversation_id>/restart", summary="Restart a conversation", **CONVERSATION_ROUTE)
def conversations(**_path: str) -> Response[Any]:
    return _relay_current()


@app.post(
    "/v1/responses",
    summary="Create a response (OpenAI's Responses API over Mistral's)",
    middlewares=parsed(),
    **MISTRAL_ROUTE,
    description="`store` (default true) keeps the response for its caller; `previous_response_id` chains from the "
    "caller's own. The streaming function serves this route in the API; this buffered handler answers a streamed "
    "request as one SSE body (sam local).",
)
def create_response() -> Response[str]:
    from mistral_gateway.flow import responses, responses_stream  # off the cold path of every other route

    request = current_request()
    return answer_response(responses_stream.buffered(responses.create(request.body, **request.completion_context)))


@app.post(
    "/v1/responses/input_tokens",
    summary="Count a response's input tokens",
    middlewares=parsed(),
    **MISTRAL_ROUTE,
)
def count_response_input_tokens() -> Response[str]:
    from mistral_gateway.flow import responses

    request = current_request()
    return answer_response(responses.count_input_tokens(request.body, caller=request.caller, deadline=request.deadline))


# The caller's own stored responses, served from the responses table (flow/responses_stored.py).
STORED_RESPONSE: dict[str, Any] = {"middlewares": parsed(with_body=False), **MISTRAL_ROUTE}


@app.get("/v1/responses/<response_id>", summary="Retrieve a stored response (the caller's own)", **STORED_RESPONSE)
def retrieve_response(response_id: str) -> Response[str]:
    from mistral_gateway.flow import responses_stored

    return answer_response(responses_stored.retrieve(response_id, caller=current_request().caller))


@app.delete("/v1/responses/<response_id>", summary="Delete a stored response (the caller's own)", **STORED_RESPONSE)
def delete_response(response_id: str) -> Response[str]:
    from mistral_gateway.flow import responses_stored

    return answer_response(responses_stored.delete(response_id, caller=current_request().caller))


@app.get("/v1/responses/<response_id>/input_items", summary="List a stored response's input items", **STORED_RESPONSE)
def response_input_items(response_id: str) -> Response[str]:
    from mistral_gateway.flow import responses_stored

    query = app.current_event.get_query_string_value
    caller = current_request().caller
    items = responses_stored.list_input_items(
        response_id, caller=caller, order=query("order"), limit=query("limit"), after=query("after")
    )
    return answer_response(items)


# Every other Mistral route. A regex group makes it a "dynamic" route for Powertools, tried after the exact
# routes above and after /v1/models/<model_id> (API Gateway likewise prefers them over /v1/{proxy+}).
# DELETE /v1/models/{id} (a fine-tuned model of the account) has its own API Gateway resource: it goes the same way.
@app.route("/v1/(.+)", method=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
@app.delete("/v1/models/<model_id>", include_in_schema=False)
def mistral_passthrough(**_path: str) -> Response[Any]:
    if any(route.exact and route.matches(app.current_event.path) for route in app.routes):
        raise MethodNotAllowed(f"Method {app.current_event.http_method} is not allowed on {app.current_event.path}.")
    return _relay_current()


def _relay_current() -> Response[Any]:
    # Imported here: a cold chat or embeddings request never loads the pass-through.
    from mistral_gateway.edge import relay_http
    from mistral_gateway.flow import passthrough

    forward = relay_http.forward_from_event(app.current_event, app.lambda_context)
    key_policy.admit(forward.caller, container.current().budgets)
    return relay_http.relayed_response(passthrough.handle(forward))


@app.get("/health", summary="Whether the secret and the cache table are reachable", tags=["Gateway"])
def health() -> Response[str]:
    from mistral_gateway.flow.health import check_health

    status, report = check_health()
    return json_response(status, json.dumps(report))


@app.get("/openapi.json", summary="This OpenAPI document", tags=["Gateway"], cache_control=PUBLIC_CACHE)
def openapi() -> Response[str]:
    return json_response(200, openapi_json(app))


@app.exception_handler(GatewayError)
def gateway_error(error: GatewayError) -> Response:
    observability.answered_with_error(error.status, error.error_type)
    return error_response(error)


@app.exception_handler(Exception)
def unexpected_error(error: Exception) -> Response:
    # The trace goes to the log for the operator (frames only: an exception's message may quote the request,
    # unbounded); the caller gets a JSON 500 without it.
    observability.log_unexpected("unexpected error", error)
    return error_response(GatewayError("The gateway failed unexpectedly; the request can be retried."))


@app.not_found
def not_found(_: Exception) -> Response:
    event = app.current_event
    if any(route.matches(event.path) for route in app.routes):
        error: GatewayError = MethodNotAllowed(f"Method {event.http_method} is not allowed on {event.path}.")
    else:
        error = NotFound(f"No route for {event.http_method} {event.path}.")
    return gateway_error(error)


@after_response.answered_first  # outermost: the work it collects runs once the metrics are flushed
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
