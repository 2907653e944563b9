"""What every inference request passes before the cache: its model allowed, its body validated, in Mistral's dialect.

Every request is validated before the lookup and the key is computed over its validated form, so a hit is
only served to a request that would pass validation, and `1.0` / `1` share an entry. The simple requests
admission.py vouches for skip pydantic until a miss, so their hits never load pydantic or the SDK.
"""

from __future__ import annotations

from typing import Any

from mistral_gateway.container import settings
from mistral_gateway.platform import observability
from mistral_gateway.platform.errors import (
    InvalidRequest,
    RequestValidationFailed,
)
from mistral_gateway.platform.observability import logger
from mistral_gateway.policies import key_policy
from mistral_gateway.requests import admission, dialect


def check_model(body: dict[str, Any]) -> None:
    allowed = settings().allowed_models
    model = body.get("model")
    if allowed and isinstance(model, str) and model not in allowed:
        raise InvalidRequest(
            f"Model {observability.bounded(model)!r} is not enabled on this gateway. "
            f"Enabled: {', '.join(sorted(allowed))}.",
            param="model",
            code="model_not_allowed",
        )
    if isinstance(model, str):
        observability.log_keys(model=observability.bounded(model))
        key_policy.check(model)  # the caller key's own model list (403)


def check_fine_tuned(body: dict[str, Any], caller: str | None) -> None:
    """A fine-tuned model (`ft:...`) must be one the caller's own job made (AccountRoutes=owned; owned.py)."""
    model = body.get("model")
    if isinstance(model, str) and model.startswith("ft:"):
        from mistral_gateway.flow.account import owned

        owned.check_fine_tuned_model(body, caller)


# Chat and FIM: the request model that validates each, and the field holding its prompt.
COMPLETIONS = {"chat": ("ChatCompletionRequest", "messages"), "fim": ("FIMCompletionRequest", "prompt")}


def admitted_completion(route: str, body: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """A chat or FIM body checked before the lookup (plain or streamed): see `admitted`."""
    check_model(body)
    return admitted(COMPLETIONS[route][0], body)


def upstream_arguments(route: str, body: dict[str, Any], validated: Any) -> dict[str, Any]:
    """For a chat or FIM miss: validation finished (where admission.py vouched for the body), the request
    checked against the SDK before anything is written, the prompt logged when asked; the SDK's arguments."""
    from mistral_gateway.upstream import mistral as upstream

    model_name, prompt_field = COMPLETIONS[route]
    arguments: dict[str, Any] = (validated or validate(model_name, body)).sdk_arguments()
    upstream.preflight(route, arguments)
    log_prompt(body.get(prompt_field))
    return arguments


def log_prompt(prompt: Any) -> None:
    if settings().log_prompts:
        logger.info("prompt (LOG_PROMPTS is on)", extra={"prompt": prompt})


def validate(model_name: str, body: dict[str, Any]) -> Any:
    from pydantic import ValidationError

    from mistral_gateway.requests import models

    try:
        return getattr(models, model_name).model_validate(body)
    except ValidationError as error:
        raise validation_failed(error) from None


def in_mistral_dialect(body: dict[str, Any]) -> dict[str, Any]:
    """A chat body in Mistral's dialect; what the translation drops or renames is validated first."""
    if dialect.speaks_openai(body) and not admission.openai_fields_certainly_valid(body):
        validate("OpenAIDialectFields", body)
    return dialect.mistral_chat(body)


def admitted(model_name: str, body: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """Validate before the cache lookup: the form the key is computed over, and the validated request (None
    when admission.py vouches for the body as it is, so a hit of a simple request never loads pydantic)."""
    if admission.certainly_valid(model_name, body):
        return body, None
    request = validate(model_name, body)
    return request.key_form(), request


def validation_failed(error: Any) -> RequestValidationFailed:
    """A pydantic ValidationError as Mistral's 422: a readable message plus the `detail` list."""
    detail = [
        {"loc": ["body", *item["loc"]], "msg": item["msg"], "type": item["type"]}
        for item in error.errors(include_url=False, include_input=False)
    ]
    parts = [f"{'.'.join(str(p) for p in item['loc'][1:])}: {item['msg']}" for item in detail[:5]]
    more = f" (and {len(detail) - 5} more)" if len(detail) > 5 else ""
    first = ".".join(str(p) for p in detail[0]["loc"][1:]) if detail else None
    return RequestValidationFailed("Invalid request: " + "; ".join(parts) + more, param=first, detail=detail)
