"""Caller keys checked locally exactly as in the cloud: API Gateway's identity-source check, then the real
authorizer function's rule (functions/authorizer/app.py, loaded from the template), then the usage plan.
Every refusal is a 401, as the template's gateway responses make it in the cloud."""

from __future__ import annotations

import hmac
from functools import cache
from types import ModuleType
from typing import Any, Protocol

from gateway_dev.cloud.template import Template
from gateway_dev.runner.functions import handler_module, load_function

AUTHORIZER = "CallerKeyAuthorizer"
MISSING = "Missing API key: send 'Authorization: Bearer <key>'."
INVALID = "The API key is not valid."
Refusal = tuple[int, str, str]  # status, message, error type


def identity_headers(template: Template) -> tuple[str, ...]:
    """The headers API Gateway requires before it calls the authorizer: its identity sources, when caching."""
    api = next(iter(template.resources_of_type("AWS::Serverless::Api")))
    identity = template.properties(api)["Auth"]["Authorizers"][AUTHORIZER]["Identity"]
    if int(template.resolve(identity.get("ReauthorizeEvery", 300))) <= 0:
        return ()
    return tuple(str(header) for header in identity.get("Headers", []))


@cache
def authorizer() -> ModuleType:
    template = Template()
    load_function(template, "AuthorizerFunction")
    return handler_module(template, "AuthorizerFunction")


class Callers(Protocol):
    """Where caller keys are checked: a usage plan (usage_plan.UsagePlanCallers, what `make serve` uses)."""

    def find(self, presented: str) -> str | None:
        """The key id of an enabled key in the plan whose value is `presented`, else None."""
        ...


def authenticate(
    api_keys: dict[str, str] | Callers, headers: Any, required: tuple[str, ...] = ()
) -> tuple[str | None, Refusal | None]:
    """The caller's key id, or the refusal: a missing identity source, no key under the rule, an unknown key."""
    if any(not str(headers.get(name) or "").strip() for name in required):
        return None, (401, MISSING, "authentication_error")
    presented = authorizer().presented_key(
        {name: str(headers.get(name) or "") for name in ("authorization", "x-api-key")}
    )
    if presented is None:
        return None, (401, MISSING, "authentication_error")
    if not isinstance(api_keys, dict):
        key_id = api_keys.find(presented)
        return (key_id, None) if key_id is not None else (None, (401, INVALID, "authentication_error"))
    for key, static_id in api_keys.items():
        if hmac.compare_digest(key.encode(), presented.encode()):
            return static_id, None
    return None, (401, INVALID, "authentication_error")
