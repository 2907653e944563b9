"""A WSGI app that serves template.yaml's API routes by invoking the functions' handlers in-process.

This is what `sam local start-api` does, without Docker: each HTTP request becomes an API Gateway REST proxy
event for the function whose `Api` event matches (method, path), the handler runs in this process (one
warm "container" per function), and its proxy result becomes the HTTP response. Caller keys are checked the
way the cloud does (caller_keys.py: identity sources, then the authorizer's own rule), before any function work.
The functions themselves are loaded and invoked by functions.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from werkzeug.wrappers import Request, Response

from gateway_dev.cloud import cloud_limits
from gateway_dev.cloud.apigw import proxy_event, proxy_result
from gateway_dev.cloud.template import ApiRoute, Template
from gateway_dev.runner import caller_keys, spend_delivery
from gateway_dev.runner.functions import LocalFunction, load_function, new_container, with_module


class ApiBridge:
    """WSGI application: HTTP in, API Gateway proxy event to the matching function, HTTP out."""

    def __init__(
        self,
        template: Template,
        *,
        stage: str = "prod",
        api_keys: dict[str, str] | caller_keys.Callers | None = None,
        extra_headers: dict[str, str] | None = None,
        own_containers: bool = False,
    ):
        """`own_containers`: each function keeps a state of its own (settings, clients, circuits...), as two
        Lambda functions do (`make serve`); otherwise they share the process's one (tests that reset it)."""
        self.template = template
        self.own_containers = own_containers
        self.containers: dict[str, Any] = {}  # logical id -> its container, when own_containers
        self.extra_headers = dict(extra_headers or {})  # e.g. marks answers that come from the emulator
        self.stage = stage
        self.routes: list[ApiRoute] = template.routes()
        # key -> key id, or a usage plan to check callers against (make serve: usage_plan.py)
        self.api_keys: dict[str, str] | caller_keys.Callers = (
            api_keys if api_keys is not None and not isinstance(api_keys, dict) else dict(api_keys or {})
        )
        self.identity_headers = caller_keys.identity_headers(template)  # required first, as API Gateway does
        self.functions: dict[str, LocalFunction] = {}
        self.binary_types = template.binary_media_types()
        spend_delivery.install(
            template, with_module
        )  # served lines to the spend function, as the cloud's subscription filter

    def function(self, logical_id: str) -> LocalFunction:
        if logical_id not in self.functions:
            loaded = load_function(self.template, logical_id)
            loaded.state = self.container(logical_id)
            self.functions[logical_id] = loaded
        return self.functions[logical_id]

    def container(self, logical_id: str) -> Any:
        """The function's own container (built on its first request, like a cold start), or None."""
        if not self.own_containers:
            return None
        if logical_id not in self.containers:
            self.containers[logical_id] = new_container()
        return self.containers[logical_id]

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        response = self.handle(request)
        for name, value in self.extra_headers.items():  # every answer, once (set: never a second copy)
            response.headers[name] = value
        if response.status_code >= 400 and "Access-Control-Allow-Origin" not in response.headers:
            response.headers.update(self.template.gateway_response_headers())  # as API Gateway's DEFAULT_4XX/5XX
        return response(environ, start_response)

    def handle(self, request: Request) -> Response:
        # Like a real stage URL, /<stage>/... works too (SDKs configured with the deployed URL shape).
        path, route = self.route_for(request.method, request.path)
        if request.method == "OPTIONS" and any(r.pattern.match(path) for r in self.routes):
            # API Gateway answers preflights itself (the template's Cors: a MOCK method, no key needed).
            return Response(b"", status=200, headers=self.template.cors_preflight_headers())
        if route is None:
            if any(r.pattern.match(path) for r in self.routes):
                return _error(405, f"Method {request.method} is not allowed on {path}.")
            return _error(404, f"No route for {request.method} {path}.", "invalid_request_error")
        api_key_id = None
        if self.api_keys and not route.public:  # public routes are marked `Authorizer: NONE` in the template
            api_key_id, failure = self._authenticate(request)
            if failure is not None:
                return failure
        event = proxy_event(
            request.method,
            path,
            resource=route.path,
            path_parameters=_path_parameters(route, path),
            query_string=request.query_string.decode("latin-1"),
            headers=list(request.headers.items()),
            body=request.get_data(),
            stage=self.stage,
            api_key_id=api_key_id,
            source_ip=request.remote_addr or "127.0.0.1",
        )
        too_long = cloud_limits.event_too_large(event, self.binary_types)  # Lambda's 6 MB: never invoked
        if too_long is not None:
            return Response(too_long, status=413, content_type="application/json")
        result = self.function(route.function).invoke(event)
        oversized = cloud_limits.result_too_large(result)
        if oversized is not None:
            return Response(oversized, status=502, content_type="application/json")
        status, headers, body = proxy_result(result)
        return Response(body, status=status, headers=headers)

    def _route(self, method: str, path: str) -> ApiRoute | None:
        # Exact paths win over templated ones, and a greedy {proxy+} loses to any other, as in API Gateway.
        matching = [route for route in self.routes if route.matches(method, path)]
        matching.sort(key=lambda route: ("+}" in route.path, "{" in route.path))
        return matching[0] if matching else None

    def _authenticate(self, request: Request) -> tuple[str | None, Response | None]:
        key_id, refusal = caller_keys.authenticate(self.api_keys, request.headers, self.identity_headers)
        if refusal is not None:
            return None, _error(*refusal)
        return key_id, None

    def route_for(self, method: str, path: str) -> tuple[str, ApiRoute | None]:
        """The path without its stage prefix, and the template route that serves it."""
        if path == f"/{self.stage}" or path.startswith(f"/{self.stage}/"):
            path = path[len(self.stage) + 1 :] or "/"
        return path, self._route(method, path)


def _path_parameters(route: ApiRoute, path: str) -> dict[str, str] | None:
    names = [part[1:-1].rstrip("+") for part in route.path.split("/") if part.startswith("{")]
    if not names:
        return None
    values = [
        part
        for template_part, part in zip(route.path.split("/"), path.split("/"), strict=False)
        if template_part.startswith("{")
    ]
    return dict(zip(names, values, strict=False))


def _error(status: int, message: str, error_type: str = "invalid_request_error") -> Response:
    body = {"object": "error", "message": message, "type": error_type, "param": None, "code": None}
    return Response(json.dumps(body), status=status, content_type="application/json")
