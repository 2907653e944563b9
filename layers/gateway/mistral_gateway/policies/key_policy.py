"""Per-key policy beside the budgets: the models a caller key may use, and when the key stops working.

Both live in the key's quota-table item (`limits#<key id>`: `models`, `key_expires_at`; usage_store.py names the
fields, key_limits.py reads them) and are read through the budgets' own cached read (Budgets.limits_for,
QUOTA_LIMITS_MAX_AGE_SECONDS), so they cost no DynamoDB call of their own. `admit` runs on every request that
reaches a Mistral route, once the route holds its request (the API function's `current_request` and pass-through,
the streaming function's `_serve`): an expired key (a rotated key after its grace period, a revoked key) is a 401
even while API Gateway still holds a cached authorization; the models it may use are kept for the request (a
context variable, copied into batch items) and checked wherever a model is named (checks.check_model, the model
list and card, the fallback chain): a 403 in Mistral's shape before any upstream call. An empty list means every
model the operator allows (AllowedModels).
"""

from __future__ import annotations

import contextvars
from typing import TYPE_CHECKING

from mistral_gateway.platform import observability
from mistral_gateway.platform.errors import Forbidden, Unauthorized

if TYPE_CHECKING:
    from mistral_gateway.policies.quota import Budgets

# None: no per-key list for this request (all the operator allows).
_MODELS: contextvars.ContextVar[frozenset[str] | None] = contextvars.ContextVar("mistral_gateway_key_models")


def admit(caller: str | None, budgets: Budgets) -> None:
    """At the start of a request: refuse an expired key; remember which models it may use (from the key's
    item in the quota table, which `budgets` reads)."""
    _MODELS.set(None)
    if not caller:
        return
    if not budgets.enabled:
        return
    limits = budgets.limits_for(caller)
    if limits is None:
        return
    if limits.expired(budgets.clock()):
        observability.log_keys(key_expired=True)
        raise Unauthorized("The API key is not valid.", code="key_expired")
    _MODELS.set(limits.models or None)


def allows(model: str) -> bool:
    models = _MODELS.get(None)
    return models is None or model in models


def allowed_models() -> frozenset[str] | None:
    """The models this request's key may use (None: no per-key list)."""
    return _MODELS.get(None)


def check(model: str) -> None:
    """A 403 when this request's key may not use `model`."""
    if not allows(model):
        raise Forbidden(
            f"This API key may not use model {observability.bounded(model)!r}.",
            param="model",
            code="model_not_allowed_for_key",
        )
