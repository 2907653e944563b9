"""Every Mistral route without a handler of its own: checked against routes_policy, then cached or relayed.

Transport-agnostic on purpose: `handle(Forward)` takes what any front end can build (an API Gateway event, an
ASGI request in the streaming function) and gives back a `Relayed` answer with raw bytes (relay.py). Account
routes go on to account/owned.py (AccountRoutes=owned); OCR, moderations and classifications are cached.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from mistral_gateway.container import current, settings
from mistral_gateway.flow import answers, checks, relay
from mistral_gateway.flow.relay import Forward, Relayed
from mistral_gateway.platform import observability
from mistral_gateway.platform.errors import Forbidden, InvalidRequest, NotFound
from mistral_gateway.platform.observability import logger
from mistral_gateway.requests import routes_policy
from mistral_gateway.requests.http import CacheControl, parse_json_body
from mistral_gateway.requests.routes_policy import Policy


class AccountRoutesOff(Forbidden):
    def __init__(self, path: str) -> None:
        super().__init__(
            f"{path} is one of Mistral's account endpoints, which this gateway's operator turned off "
            "(template parameter AccountRoutes=off). With AccountRoutes=owned (the default) each caller uses "
            "only the files, jobs, agents and conversations it created through the gateway.",
            code="account_routes_off",
        )


def handle(request: Forward, relaying: Callable[[Forward], Relayed] | None = None) -> Relayed:
    """Apply the route's policy: 403 (account routes, unless enabled), the cache, or a plain relay.
    `relaying` replaces budgeted_relay where Mistral streams (account/streams.py: the same policies, streamed)."""
    relaying = relaying or budgeted_relay
    relay.checked_path(request.subpath)  # before the policy: "ocr/../files" must not pass as OCR
    if (elsewhere := routes_policy.NOT_MISTRAL.get(request.subpath.strip("/"))) is not None:
        raise NotFound(elsewhere, code="not_a_mistral_route")
    rule = routes_policy.rule_for(request.method, request.subpath)
    logger.append_keys(upstream_route=rule.prefix or "unlisted", route_policy=rule.policy.name.lower())
    observability.count_by(observability.PASSTHROUGH_REQUESTS, "policy", rule.policy.name.lower())
    if rule is routes_policy.INFERENCE_SUBPATH:  # whatever the mode: /v1/ocr/files is not OCR's to relay
        raise NotFound(f"No route for {request.method} /v1/{request.subpath.strip('/')}.")
    mode = settings().account_routes
    if rule is routes_policy.UNLISTED and mode != "shared":
        raise NotFound(f"No route for {request.method} /v1/{request.subpath.strip('/')}.")
    if rule.policy is Policy.ACCOUNT:
        if mode == "shared":
            return relaying(request)
        if mode != "owned":
            raise AccountRoutesOff(f"/v1/{request.subpath.strip('/')}")
        from mistral_gateway.flow.account import owned

        return owned.handle(request, relaying)
    if mode == "owned":  # inference that names account resources (OCR's file_id, an agent_id, an ft: model)
        from mistral_gateway.flow.account import owned

        owned.check_body_references(request)
    if rule.policy is Policy.CACHED:
        return cached_inference(rule.prefix, request)
    if not request.body:  # every inference route takes a body (JSON or an upload): Mistral would refuse it
        raise InvalidRequest("The request body is empty; send a JSON object.")
    return relaying(request)


def budgeted_relay(request: Forward) -> Relayed:
    """A relay that counts against the caller's budgets (quota.py) like chat: one request, and the tokens the
    answer reports (reserved from the JSON body's text beforehand; 429 when spent)."""
    body = relay.edge_json(request)
    from mistral_gateway.requests import prompt_cache

    request = replace(request, body=prompt_cache.namespaced_body(request.subpath, request.body, request.caller))
    if "model" in body:
        checks.check_model(body)  # AllowedModels holds on every route that names a model
    # Routes that generate with chat's fields get chat's cap (quota.py) when their body is JSON.
    cappable = request.method == "POST" and request.subpath.strip("/") in relay.CAPPABLE_ROUTES and bool(body)
    with current().budgets.spending(request.caller, body, cappable=cappable) as spending:
        if spending.cap is not None:
            request = replace(request, body=json.dumps({**body, "max_tokens": spending.cap}).encode())
        relayed = relay.relay(request)
        answer = relay.answer_fields(relayed)
        usage = relay.token_usage_of(answer)
        spending.settle(usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0))
    # Usage and cost headers and metrics, as on chat (the answer names the model, e.g. an agent's).
    priced = current().prices.headers_and_metrics(answer.get("model") or body.get("model"), "MISS", usage)
    return replace(relayed, headers={**relayed.headers, **spending.headers, **priced})


def cached_inference(prefix: str, request: Forward) -> Relayed:
    """OCR, moderations, classifications: the cache flow of chat, keyed on the canonical JSON body.

    A document or image given by http(s) URL is not cached (X-Cache: BYPASS): what is behind a URL can change,
    and fetching it here to hash it would double the download inside the 29 s limit. Inline (data: URI) and
    uploaded (file_id) documents are content-addressed, so they are cached.
    """

    body = parse_json_body(request.body, request.headers.get("content-type"), max_bytes=settings().max_body_bytes)
    checks.check_model(body)
    control = request.control
    if references_remote_content(body):
        logger.append_keys(cache_skipped="remote_url")
        control = CacheControl(read=False, store=False)

    def prepare() -> answers.Fetch:
        def fetch() -> answers.Fetched:
            relayed = relay.relay(request)
            if relayed.status >= 400:
                raise relay.RelayedRejection(relayed)
            data = relay.json_object(relayed)
            return answers.Fetched(relayed.body, relay.token_usage_of(data), complete=True)

        return fetch

    canonical = {key: value for key, value in body.items() if value is not None}
    answer = answers.through_cache(
        f"v1/{prefix}", canonical, request.caller, control, prepare, request.deadline, charged=body
    )
    headers = {"X-Cache": answer.cache_status, **answer.headers}
    headers.update(current().prices.headers_and_metrics(body.get("model"), answer.cache_status, answer.usage))
    return Relayed(200, "application/json", answer.body.encode(), headers)


def references_remote_content(value: Any, name: str = "") -> bool:
    """Whether the body points at content anywhere but inline: a string in any field named `...url`
    (document_url, image_url, image_url.url...) that is not a `data:` URI. URL parsers forgive a leading
    space, a tab inside the scheme (" http://", "h\ttp://"), a scheme left out ("//host") and other schemes
    (file:, ftp:), so the one content-addressed form is trusted rather than a list of remote ones."""
    if isinstance(value, dict):
        return any(references_remote_content(item, str(key)) for key, item in value.items())
    if isinstance(value, list):
        return any(references_remote_content(item, name) for item in value)
    return name.lower().endswith("url") and isinstance(value, str) and value[:5].lower() != "data:"
