"""The model list and model cards (`GET /v1/models`, `/v1/models/{id}`): Mistral's own, cached briefly and shared,
then filtered per request by the allow-list, the caller key's models and the caller's own fine-tuned models.
"""

from __future__ import annotations

import json
from dataclasses import replace

from mistral_gateway.container import current, settings
from mistral_gateway.flow import answers
from mistral_gateway.flow.answers import Answer, Fetched
from mistral_gateway.platform.deadline import Deadline
from mistral_gateway.platform.errors import (
    NotFound,
)
from mistral_gateway.policies import key_policy
from mistral_gateway.requests.http import CacheControl

MODELS_TTL_SECONDS = 300


def list_models(*, caller: str | None, control: CacheControl, deadline: Deadline) -> Answer:
    """Mistral's model list (what the gateway's key can use), cached briefly, filtered by the allow-list."""

    counted = _ModelsBudget(caller)

    def fetch() -> Fetched:
        from mistral_gateway.upstream import mistral as upstream

        counted.spend()  # a call that reaches Mistral is a request of the caller's (429 when spent)
        fetched = upstream.models(*current().upstream_and_sdk(), deadline)
        return Fetched(fetched.body, {}, complete=isinstance(fetched.data.get("data"), list))

    shared = _briefly(control)
    answer = answers.through_cache(
        "models", {"path": "/v1/models"}, None, shared, lambda: fetch, deadline, scope="shared"
    )
    answer = counted.on(answer)
    allowed = settings().allowed_models
    per_key = key_policy.allowed_models()
    from mistral_gateway.flow.account import owned_models

    if not allowed and per_key is None and not owned_models.filtering():
        return answer
    # Filtered after the cache, per request: the cached list is Mistral's own, never one caller's view of it.
    listing = json.loads(answer.body)
    cards = listing.get("data", [])
    own = owned_models.own_fine_tuned(caller, cards)  # AccountRoutes=owned: only the caller's ft: models
    if not allowed and per_key is None and own is None:
        return answer
    listing["data"] = [
        card
        for card in cards
        if (not allowed or card.get("id") in allowed)
        and (per_key is None or card.get("id") in per_key)
        and owned_models.visible(card, own)
    ]
    return replace(answer, body=json.dumps(listing))


def _briefly(control: CacheControl) -> CacheControl:
    """The caller's cache steering, with model listings kept MODELS_TTL_SECONDS unless it asked for less."""
    return replace(control, max_age=control.max_age or MODELS_TTL_SECONDS)


def retrieve_model(model_id: str, *, caller: str | None, control: CacheControl, deadline: Deadline) -> Answer:
    """One model card (`GET /v1/models/{id}`), cached briefly like the list; a model off the allow-list is 404,
    as Mistral answers for a model it does not know."""
    allowed = settings().allowed_models
    if allowed and model_id not in allowed:
        raise NotFound(f"Model not found: {model_id}", param="model_id", code="model_not_found")
    key_policy.check(model_id)
    from mistral_gateway.flow.account import owned_models

    owned_models.check_card(model_id, caller)  # another caller's ft: model: this same 404, before the cache

    counted = _ModelsBudget(caller)

    def fetch() -> Fetched:
        from mistral_gateway.flow import relay  # only a miss relays: a cold hit does not import it

        counted.spend()  # a call that reaches Mistral is a request of the caller's (429 when spent)
        card = relay.Forward("GET", f"models/{model_id}", "", {}, None, None, control, deadline)
        relayed = relay.relay(card)
        if relayed.status >= 400:
            raise relay.RelayedRejection(relayed)
        relay.json_object(relayed)
        return Fetched(relayed.body, {}, complete=True)

    shared = _briefly(control)
    key = {"path": f"/v1/models/{model_id}"}
    return counted.on(answers.through_cache("models", key, None, shared, lambda: fetch, deadline, scope="shared"))


class _ModelsBudget:
    """The models routes count against the caller's budgets (issue 21): one request, no tokens, for every call
    that reaches Mistral; a hit (the listing is shared and kept MODELS_TTL_SECONDS) only with QUOTA_COUNT_HITS."""

    def __init__(self, caller: str | None) -> None:
        self.caller = caller
        self.headers: dict[str, str] | None = None

    def spend(self) -> None:
        reservation = current().budgets.reserve(self.caller, 0)
        self.headers = reservation.headers if reservation else {}

    def on(self, answer: answers.Answer) -> Answer:
        if self.headers is None:  # answered from the cache
            budgets = current().budgets
            if not budgets.enabled:
                return answer
            if budgets.settings.quota_count_hits:
                self.spend()
            else:
                self.headers = budgets.peek(self.caller)
        return replace(answer, headers={**answer.headers, **(self.headers or {})})
