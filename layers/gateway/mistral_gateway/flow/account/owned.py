"""AccountRoutes=owned: Mistral's account routes, each caller seeing and using only what it created here.

The flow of one request (the table is ownership.py, the records ledger.py):
1. the route's row: refused rows answer 403 with their reason; malformed path ids 400;
2. every id in the path must be the caller's own (one BatchGetItem); otherwise 404, Mistral never asked;
3. ids referenced inside the body must be the caller's own too (references.py), otherwise 404;
4. listed routes are answered from the ledger (lists.py); the others are relayed (budgeted like chat);
5. a created resource is recorded before the answer leaves. If that fails the resource is deleted upstream
   again and the caller gets 503 (no orphan nobody can see). Derived resources Mistral names in an answer
   (a batch job's output/error files, a fine-tuning job's model, a restarted conversation) are recorded for
   the same owner; a deleted one is forgotten.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import replace
from typing import Any

from mistral_gateway.container import current
from mistral_gateway.flow import relay
from mistral_gateway.flow.relay import Forward, Relayed
from mistral_gateway.platform.errors import Forbidden, GatewayError, InvalidRequest, NotFound, UpstreamError
from mistral_gateway.platform.observability import logger
from mistral_gateway.requests import ownership
from mistral_gateway.requests.ownership import Access
from mistral_gateway.stores.ledger import Ledger, LedgerUnavailable, OwnedElsewhere, owner_of

# What a created resource's answer may name that Mistral made from it: (answer field, kind).
DERIVED_FIELDS = {
    "batch_job": (("output_file", "file"), ("error_file", "file")),
    "fine_tuning_job": (("fine_tuned_model", "model"),),
    "conversation": (("conversation_id", "conversation"),),
}


class AccountRouteRefused(Forbidden):
    def __init__(self, method: str, path: str, why: str) -> None:
        super().__init__(
            f"{method} {path} is refused by this gateway for every caller: {why}.", code="account_route_refused"
        )


def not_found(kind: str) -> NotFound:
    """The one 404 for an id that is another caller's, unknown to the ledger, or not there at all."""
    return NotFound(f"No {kind.replace('_', ' ')} with this id.", code="not_found")


def handle(request: Forward, budgeted_relay: Any) -> Relayed:
    found = ownership.match(request.method, request.subpath)
    route = found.route
    logger.append_keys(account_route=route.pattern or "unlisted", account_access=route.access.value)
    if route.access is Access.REFUSED:
        raise AccountRouteRefused(request.method, f"/v1/{request.subpath.strip('/')}", route.why)
    for value in found.params.values():
        if not ownership.ID_PATTERN.match(value):
            raise InvalidRequest("The id in the path is not a valid Mistral id.", code="invalid_id")
    owner = owner_of(request.caller)
    ledger = current().ledger
    if not ledger.table_name:
        raise LedgerUnavailable()
    wanted = found.owned_ids()
    from mistral_gateway.requests import references

    wanted += references.in_body(route, request)
    check_owned(ledger, owner, wanted)
    if route.access is Access.LISTED:
        from mistral_gateway.flow.account import lists

        return lists.serve(request, route.kind, found.params.get("library_id"), owner)
    relayed: Relayed = budgeted_relay(request)
    if not 200 <= relayed.status < 300:
        return relayed
    if route.access is Access.OWNED:
        record_created(ledger, owner, route.kind, found.params.get("library_id"), relayed)
    else:
        settle_references(ledger, owner, request.method, found, relayed)
        if route.pattern == "batch/jobs/{batch_id}" and request.method == "GET":
            from mistral_gateway.flow.account import batches

            settled = batches.settle_finished(request, owner, answer_fields(relayed))
            relayed = replace(relayed, headers={**relayed.headers, **settled})
    return relayed


def check_body_references(request: Forward) -> None:
    """An inference route's body may name account resources too: each must be the caller's own."""
    from mistral_gateway.requests import references

    wanted = references.in_body(None, request)
    if wanted:
        check_owned(current().ledger, owner_of(request.caller), wanted)


def check_fine_tuned_model(body: dict[str, Any], caller: str | None) -> None:
    """Chat, FIM, embeddings (their own handlers): a fine-tuned model must be one the caller's job made."""
    model = body.get("model")
    if isinstance(model, str) and model.startswith("ft:") and current().settings.account_routes == "owned":
        check_owned(current().ledger, owner_of(caller), [("model", model)])


def check_owned(ledger: Ledger, owner: str, wanted: list[tuple[str, str]]) -> None:
    if not wanted:
        return
    owners = ledger.owners(wanted)
    for key in wanted:
        if owners.get(key) != owner:
            raise not_found(key[0])


def record_created(ledger: Ledger, owner: str, kind: str, parent: str | None, relayed: Relayed) -> None:
    answer = answer_fields(relayed)
    rid = answer.get(ownership.ID_FIELDS.get(kind, "id"))
    if not isinstance(rid, str) or not rid:
        # Mistral made something the gateway cannot name: nobody could reach it again, so say so.
        raise UpstreamError("Mistral's answer did not name the resource it created.")
    try:
        ledger.record(owner, kind, rid, parent)
        record_derived(ledger, owner, kind, answer)
    except LedgerUnavailable:
        delete_upstream(kind, rid, parent, relayed)
        raise
    except OwnedElsewhere:
        logger.error("Mistral answered a create with another caller's id", extra={"kind": kind})
        raise UpstreamError("Mistral answered with a resource the gateway cannot give to this caller.") from None


def settle_references(ledger: Ledger, owner: str, method: str, found: ownership.Match, relayed: Relayed) -> None:
    """After a 2xx on an owned resource: forget a deleted one, record what Mistral derived from it."""
    if not found.params:
        return
    last_param = list(found.params)[-1]
    kind = ownership.PARAM_KINDS.get(last_param)
    if method == "DELETE" and kind and found.route.pattern.endswith("{" + last_param + "}"):
        ledger.forget(owner, kind, found.params[last_param])
        return
    parent_kind = ownership.PARAM_KINDS.get(next(iter(found.params)), "")
    try:
        record_derived(ledger, owner, parent_kind, answer_fields(relayed))
    except OwnedElsewhere:
        raise not_found(parent_kind) from None


def record_derived(ledger: Ledger, owner: str, kind: str, answer: dict[str, Any]) -> None:
    for field, derived_kind in DERIVED_FIELDS.get(kind, ()):
        value = answer.get(field)
        if isinstance(value, str) and value and ownership.ID_PATTERN.match(value):
            ledger.record(owner, derived_kind, value)


def delete_upstream(kind: str, rid: str, parent: str | None, relayed: Relayed) -> None:
    """Undo a create the ledger could not record; if that fails too, the operator is told which id is orphaned."""
    from mistral_gateway.platform.deadline import Deadline

    template = ownership.DELETE_PATHS.get(kind)
    if template is None:
        return
    path = template.format(id=rid, parent=parent or "")
    method = "POST" if path.endswith("/cancel") else "DELETE"
    undo = Forward(method, path, "", {}, None, None, _no_cache(), Deadline.start(5_000, None))
    try:
        relay.relay(undo)
        logger.warning("ledger unavailable; deleted the new resource upstream", extra={"kind": kind})
    except GatewayError:
        logger.error("ledger unavailable and the new resource could not be deleted", extra={"kind": kind, "id": rid})


def _no_cache() -> Any:
    from mistral_gateway.requests.http import CacheControl

    return CacheControl(read=False, store=False)


def answer_fields(relayed: Relayed) -> dict[str, Any]:
    """The answer's JSON object; for a buffered stream, the fields of its events merged (first value wins)."""
    if relayed.content_type.lower().startswith("text/event-stream"):
        merged: dict[str, Any] = {}
        for line in relayed.body.splitlines():
            if line.startswith(b"data:"):
                with contextlib.suppress(ValueError):
                    event = json.loads(line[5:])
                    if isinstance(event, dict):
                        merged = {**event, **merged}
        return merged
    try:
        data = json.loads(relayed.body) if relayed.body else {}
    except (ValueError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}
