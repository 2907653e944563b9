"""The API function's Powertools middlewares: the "request served" line of every request, a route's request
parsing, and the public documents' Cache-Control."""

from __future__ import annotations

import time
from collections.abc import Callable

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware

from mistral_gateway import observability, spend
from mistral_gateway.http import GatewayRequest, caller_id
from mistral_gateway.observability import logger
from mistral_gateway.resolver import GatewayResolver

# The public documents change only with a deploy: browsers (and any CDN in front) may reuse them for an hour.
PUBLIC_CACHE = "public, max-age=3600"

Middleware = Callable[[GatewayResolver, NextMiddleware], Response]
# The public documents change only with a deploy: browsers (and any CDN in front) may reuse them for an hour.
PUBLIC_CACHE = "public, max-age=3600"


def request_served(app: GatewayResolver, next_middleware: NextMiddleware) -> Response:
    """One line per request says what happened, errors, 404 and 405 included; the service adds model, cache
    status and tokens."""
    started = time.perf_counter()
    try:
        response = next_middleware(app)
    except Exception as error:
        # Powertools would run the exception handlers after every middleware: run here, the line has the status.
        handler = app.exception_handler_manager.lookup_exception_handler(type(error))
        if handler is None:
            raise
        response = handler(error)
    event = app.current_event
    fields = {
        "method": observability.bounded(event.http_method),
        "route": observability.bounded(event.resource or event.path),
        "status": response.status_code,
        "caller": caller_id(event.raw_event),  # the API key's id (or its hash), never the key
        "duration_ms": round((time.perf_counter() - started) * 1000, 2),
    }
    line = {**logger.get_current_keys(), **fields}
    # The line is the spend record: CloudWatch Logs delivers it to the spend function (spend_batches.py).
    logger.info("request served", extra={**fields, **spend.line_fields(line)})
    return response


def parsed(*, with_body: bool = True, item_list: str | None = None) -> list[Middleware]:
    """A route's middleware: the request's body (when it has one), caller, Cache-Control and deadline, checked
    before the route runs and handed to it as `app.context["request"]`."""

    def parse(app: GatewayResolver, next_middleware: NextMiddleware) -> Response:
        request = GatewayRequest.from_event(
            app.current_event, app.lambda_context, with_body=with_body, item_list=item_list
        )
        app.append_context(request=request)
        return next_middleware(app)

    return [parse]


def public_cache(app: GatewayResolver, next_middleware: NextMiddleware) -> Response:
    """Cache-Control for /docs: Powertools' enable_swagger takes middlewares but no cache_control."""
    response = next_middleware(app)
    if response.status_code == 200:
        response.headers["Cache-Control"] = PUBLIC_CACHE
    return response
