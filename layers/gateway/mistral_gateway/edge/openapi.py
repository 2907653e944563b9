"""The API's OpenAPI document, generated from the routes (Powertools) and our request models (pydantic).

Powertools derives paths, summaries and responses from the route decorators. Request bodies are validated
by our own models before the cache lookup (admission.py aside) rather than by Powertools (see
docs/decisions.md), so their schemas are added here from those same models. resolver.py builds the document
on the first request for it (never on the chat path) and keeps it for the container's life; /docs is
Powertools' Swagger UI over that same document.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mistral_gateway import __version__

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler.openapi.models import OpenAPI

TITLE = "Mistral-compatible gateway"
DESCRIPTION = (
    "Mistral's API behind API Gateway, with a DynamoDB answer cache. Point the Mistral SDK's `server_url` (or the "
    "OpenAI SDK's `base_url` + `/v1`) here. Every answer carries `X-Cache: HIT | MISS | BYPASS`; send "
    "`Cache-Control: no-cache | no-store | max-age=N` to steer the cache."
)

ERROR_RESPONSES: dict[int, Any] = {
    400: {"description": "The body is not JSON, or not allowed (Mistral-style error object)"},
    401: {"description": "Missing or invalid caller key"},
    413: {"description": "The body is larger than the gateway accepts"},
    422: {"description": "The body is not a valid request; `message` names the field, `detail` lists all"},
    429: {"description": "Rate limited (caller quota or Mistral); see Retry-After"},
    502: {"description": "Mistral failed, answered garbage, or rejected the gateway's key"},
    503: {"description": "The gateway cannot read its Mistral key"},
    504: {"description": "Mistral did not answer within the deadline"},
}

# Route -> the model its JSON body must satisfy (the same models flow/checks.py validates with).
REQUEST_MODELS = {
    "/v1/chat/completions": "ChatCompletionRequest",
    "/v1/fim/completions": "FIMCompletionRequest",
    "/v1/embeddings": "EmbeddingRequest",
    "/v1/batch/chat/completions": "BatchChatRequest",
}

# What Powertools puts in the document besides the routes (app.configure_openapi); the servers come per request.
SETTINGS: dict[str, Any] = {
    "title": TITLE,
    "version": __version__,
    "description": DESCRIPTION,
    "security_schemes": {
        "bearer": {"type": "http", "scheme": "bearer"},
        "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
    },
    "security": [{"bearer": []}, {"apiKey": []}],
}
DOCS_PATH = "/docs"


def completed(schema: OpenAPI) -> OpenAPI:
    """Powertools' document of the routes, plus the request bodies, the catch-all route and /docs."""
    from aws_lambda_powertools.event_handler.openapi.models import OpenAPI

    spec: dict[str, Any] = schema.model_dump(mode="json", by_alias=True, exclude_none=True)
    _add_request_bodies(spec)
    _add_passthrough(spec)
    # Powertools registers its Swagger UI route outside the document.
    spec["paths"][DOCS_PATH] = {
        "get": {
            "summary": "Swagger UI for this API",
            "tags": ["Gateway"],
            "responses": {"200": {"description": "Swagger UI (`?format=json`: this document)"}},
        }
    }
    for path in ("/health",):  # public routes need no caller key
        for operation in spec["paths"].get(path, {}).values():
            operation["security"] = []
    return OpenAPI.model_validate(spec)


def _add_passthrough(spec: dict[str, Any]) -> None:
    """The catch-all route (a regex to Powertools, `/v1/{proxy+}` to API Gateway), documented by hand."""
    from mistral_gateway.requests.routes_policy import ROUTES

    table = "; ".join(f"`/v1/{rule.prefix}`: {rule.policy.value}" for rule in ROUTES)
    operation = {
        "summary": "Every other Mistral route",
        "tags": ["Mistral API"],
        "description": "Relayed to Mistral with the gateway's key; Mistral's status and body come back as sent. "
        f"Per route: {table}; any other route: 404. Account routes follow AccountRoutes "
        "(owned by default: each caller sees only its own).",
        "parameters": [{"name": "proxy+", "in": "path", "required": True, "schema": {"type": "string"}}],
        "responses": {"200": {"description": "Mistral's answer"}, **{str(k): v for k, v in ERROR_RESPONSES.items()}},
    }
    spec["paths"]["/v1/{proxy+}"] = {method: operation for method in ("get", "post", "put", "patch", "delete")}
    deletion = {**operation, "summary": "Delete a fine-tuned model (an account route: off by default)"}
    deletion["parameters"] = [{"name": "model_id", "in": "path", "required": True, "schema": {"type": "string"}}]
    spec["paths"].setdefault("/v1/models/{model_id}", {})["delete"] = deletion


def _add_request_bodies(spec: dict[str, Any]) -> None:
    from pydantic import BaseModel, Field
    from pydantic.json_schema import models_json_schema

    from mistral_gateway.requests import models

    class BatchChatRequest(BaseModel):
        requests: list[models.ChatCompletionRequest] = Field(min_length=1)  # type: ignore[name-defined]

    classes: dict[str, type[BaseModel]] = {
        name: getattr(models, name) for name in REQUEST_MODELS.values() if hasattr(models, name)
    }
    classes["BatchChatRequest"] = BatchChatRequest
    _, definitions = models_json_schema(
        [(model, "validation") for model in classes.values()], ref_template="#/components/schemas/{model}"
    )
    spec.setdefault("components", {}).setdefault("schemas", {}).update(definitions.get("$defs", {}))
    for path, model_name in REQUEST_MODELS.items():
        operation = spec["paths"].get(path, {}).get("post")
        if operation is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{model_name}"}}},
            }


def openapi_json(app: Any) -> str:
    """The document for GET /openapi.json, with the server Powertools' Swagger UI names for the same request."""
    from aws_lambda_powertools.event_handler.openapi.models import Server

    return str(app.get_openapi_json_schema(servers=[Server(url=base_path(app.current_event.raw_event))]))


def base_path(event: dict[str, Any]) -> str:
    """Where the API is mounted, by Powertools' rule for its Swagger UI: `/{stage}` when the request's path
    starts with it (the execute-api URL), `/` otherwise (a custom domain)."""
    context = event.get("requestContext") or {}
    stage = context.get("stage")
    if stage and stage != "$default" and (context.get("path") or "").startswith(f"/{stage}"):
        return f"/{stage}"
    return "/"
