"""Powertools' REST resolver with the three things the gateway needs of it besides routing.

- A public record of the routes it serves (`routes`): 405 or 404 for an unserved request, and the template
  test, without reading Powertools' private route tables.
- Swagger UI (Powertools' `enable_swagger`) registered when a request first asks for it: enable_swagger
  imports Powertools' pydantic OpenAPI models (~100 ms here), which no cold chat request should pay.
- The OpenAPI document completed with what Powertools cannot derive (openapi.py), built once per server URL:
  /openapi.json and the document inside /docs are then the same.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler.openapi.models import OpenAPI


@dataclass(frozen=True)
class ServedRoute:
    method: str
    rule: str  # as registered: "/health", "/v1/models/<model_id>", or a regex such as "/v1/(.+)"

    def matches(self, path: str) -> bool:
        return _pattern(self.rule).fullmatch(path) is not None

    @property
    def exact(self) -> bool:
        """A route without parameters (Powertools' "static" routes, tried before the others)."""
        return _pattern(self.rule).groups == 0


@cache
def _pattern(rule: str) -> re.Pattern[str]:
    # Powertools' <name> matches one path segment; regex rules are kept as written.
    return re.compile(re.sub(r"<\w+>", "([^/]+)", rule))


class GatewayResolver(APIGatewayRestResolver):
    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.routes: set[ServedRoute] = set()
        self._swagger: dict[str, Any] | None = None
        self._documents: dict[str, OpenAPI] = {}

    def route(self, rule: str, method: Any, *args: Any, **kwargs: Any) -> Any:
        methods = [method] if isinstance(method, str) else list(method)
        self.routes.update(ServedRoute(name.upper(), rule) for name in methods)
        return super().route(rule, method, *args, **kwargs)

    def enable_swagger_on_first_use(self, *, path: str, **options: Any) -> None:
        """`enable_swagger(path=path, **options)`, run by the first request for `path`."""
        self.routes.add(ServedRoute("GET", path))
        self._swagger = {"path": path, **options}

    def resolve(self, event: Any, context: Any) -> dict[str, Any]:
        swagger = self._swagger
        if swagger is not None and (event.get("path") or "").rstrip("/") == swagger["path"]:
            self._swagger = None
            self.enable_swagger(**swagger)
        return super().resolve(event, context)

    def get_openapi_schema(self, **options: Any) -> OpenAPI:
        # Only the servers vary (with the stage); Powertools would rebuild the document on every /docs request.
        key = repr(options.get("servers"))
        if key not in self._documents:
            from mistral_gateway.edge import openapi

            self._documents[key] = openapi.completed(super().get_openapi_schema(**options))
        return self._documents[key]
