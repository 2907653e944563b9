"""The gateway's HTTP API: routes and decorators only. The work happens in the layer's `mistral_gateway`.

A request goes: lambda_handler -> route -> mistral_gateway.service -> (cache, upstream).
"""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from mistral_gateway import observability, service
from mistral_gateway.errors import GatewayError, MethodNotAllowed, NotFound
from mistral_gateway.http import GatewayRequest, error_response, json_response
from mistral_gateway.observability import logger, metrics

app = APIGatewayRestResolver()


@app.post("/v1/chat/completions")
def chat_completions() -> Response:
    request = GatewayRequest.from_event(app.current_event, app.lambda_context)
    answer = service.chat_completion(
        request.body, caller=request.caller, control=request.control, deadline=request.deadline
    )
    return json_response(200, answer.body, {"X-Cache": answer.cache_status, **answer.headers})


@app.exception_handler(GatewayError)
def gateway_error(error: GatewayError) -> Response:
    if error.status < 500:
        observability.count(observability.CLIENT_ERRORS)
    logger.append_keys(error_type=error.error_type)
    return error_response(error)


@app.exception_handler(Exception)
def unexpected_error(error: Exception) -> Response:
    # The trace goes to the log for the operator; the caller gets a JSON 500 without it.
    logger.exception("unexpected error")
    return error_response(GatewayError("The gateway failed unexpectedly; the request can be retried."))


@app.not_found
def not_found(_: Exception) -> Response:
    event = app.current_event
    if any(route.rule.match(event.path) for route in app._static_routes + app._dynamic_routes):
        error: GatewayError = MethodNotAllowed(f"Method {event.http_method} is not allowed on {event.path}.")
    else:
        error = NotFound(f"No route for {event.http_method} {event.path}.")
    return gateway_error(error)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    started = time.perf_counter()
    result = app.resolve(event, context)
    # One line per request says what happened; the service adds model, cache status and tokens.
    logger.info(
        "request served",
        extra={
            "method": event.get("httpMethod"),
            "route": event.get("resource") or event.get("path"),
            "status": result.get("statusCode"),
            "duration_ms": round((time.perf_counter() - started) * 1000, 2),
        },
    )
    return result
