"""`/v1/responses`: OpenAI-Responses clients through Mistral's stateless Responses API, with stored responses.

Mistral's `/v1/responses` takes `store` only as false (or null) and cannot be asked for a response again;
OpenAI-Responses clients (the openai SDK's `responses.create`, the Vercel AI SDK's `openai(model)`, agent SDKs)
default to `store: true` and chain turns with `previous_response_id`. So:

- `store` defaults to true, as OpenAI's does; Mistral is always sent `store: false`. A stored response is
  kept by the gateway, per caller, in the responses table (responses_stored.py) for RESPONSES_TTL_SECONDS.
- `previous_response_id` must be one of the caller's own stored, unexpired responses: its context (the input
  Mistral was sent for it, earlier turns included) and its output are put before the new input, and the field
  is not sent to Mistral. Another caller's id, an unknown one, an expired or deleted one are the same 404
  (`response_not_found`), and nothing is sent to Mistral.
- `GET` / `DELETE /v1/responses/{id}` and `GET /v1/responses/{id}/input_items` are served from the table.
- `prompt_cache_key` is namespaced per caller (prompt_cache.py).
- Metered like chat: the caller's budgets (quota.py), usage and cost headers (a streamed answer's usage is in
  its last event), token and cost metrics, the `request served` line.
- Never answered from the answer cache (`X-Cache: BYPASS`): a stored response must be a new response with its
  own id (a cached one would hand two turns the same id, and GET/DELETE/chaining would mix them up), and the
  clients of this API chain turns, so exact repeats are rare. docs/decisions.md says more.

A streamed request (`stream: true`) is forwarded event by event as Mistral writes it (responses_stream.py); the
completed response is stored at the end, from its `response.completed` (or `response.incomplete`) event.
"""

from __future__ import annotations

import json
import time
from typing import Any

from mistral_gateway.container import current, settings
from mistral_gateway.flow import answers, checks, relay, responses_stored, responses_stream
from mistral_gateway.platform import economics, observability
from mistral_gateway.platform.deadline import Deadline
from mistral_gateway.platform.errors import (
    InvalidRequest,
    RequestValidationFailed,
    UpstreamError,
)
from mistral_gateway.requests import limits, prompt_cache
from mistral_gateway.requests.http import CacheControl
from mistral_gateway.upstream import mistral, retry

ROUTE = "responses"
# The fields this module reads itself, with the JSON types they may have (null is always allowed).
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "model": (str,),
    "stream": (bool,),
    "store": (bool,),
    "previous_response_id": (str,),
    "prompt_cache_key": (str,),
    "instructions": (str,),
    "max_output_tokens": (int,),
}


# --- create ------------------------------------------------------------------------------------------------


def create(
    body: dict[str, Any], *, caller: str | None, control: CacheControl, deadline: Deadline, fallbacks: bool = True
) -> answers.Answer | responses_stream.ResponseStream:
    """POST /v1/responses, plain or streamed. Raises a GatewayError for anything before the first byte."""
    started = time.perf_counter()
    check(body)
    checks.check_model(body)
    previous_id = body.get("previous_response_id")
    turn = responses_stored.input_items(body["input"])
    context = [*responses_stored.expanded_history(caller, previous_id), *turn] if previous_id else turn
    arguments = upstream_body(body, context, caller)
    from mistral_gateway.upstream import mistral as upstream  # pydantic and the SDK's models: only from here on

    upstream.preflight("responses", arguments)  # the caller's 422 for what the SDK's Responses model refuses
    plan = responses_stored.Plan(
        caller, body.get("store") is not False, previous_id, context, len(turn), str(body["model"])
    )
    checks.log_prompt(turn)
    observability.log_keys(cache="BYPASS", response_store=plan.store, chained=previous_id is not None)
    spending = current().budgets.spending(caller, charged_form(arguments))  # 429 when the caller's budget is spent
    if body.get("stream") is True:
        try:
            opened = retry.call(
                lambda timeout_ms: _open(arguments, timeout_ms, settings().stream_idle_timeout_ms),
                deadline,
                via=current().upstream(retry.MISTRAL),
                operation="responses.stream",
            )
        except BaseException:
            spending.release()
            raise
        headers = {"X-Cache": "BYPASS", **spending.headers}
        return responses_stream.ResponseStream(plan, opened, spending, deadline, started, headers, control)
    with spending:
        data = retry.call(
            lambda timeout_ms: _ask(arguments, timeout_ms),
            deadline,
            via=current().upstream(retry.MISTRAL),
            operation="responses",
        )
        usage = economics.token_usage(data.get("usage"))
        spending.settle(usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0))
    answer_body = json.dumps(plan.finished(data), ensure_ascii=False)
    answers.account(answer_body.encode(), usage)
    answer = answers.Answer(body=answer_body, cache_status="BYPASS", usage=usage, headers=spending.headers)
    return answers.priced(answer, {"model": data.get("model") or body["model"]})


def check(body: dict[str, Any]) -> None:
    """The fields the gateway acts on, checked before anything else (Mistral checks the rest)."""
    if "input" not in body or body["input"] is None:
        raise RequestValidationFailed(
            "Invalid request: input: Field required",
            param="input",
            detail=[{"loc": ["body", "input"], "msg": "Field required", "type": "missing"}],
        )
    if not isinstance(body["input"], str | list) or (isinstance(body["input"], list) and not body["input"]):
        raise InvalidRequest("`input` must be a string or a non-empty list of input items.", param="input")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise InvalidRequest("`model` must be a model name.", param="model")
    for name, types in _FIELD_TYPES.items():
        value = body.get(name)
        if value is not None and (not isinstance(value, types) or isinstance(value, bool) is not (bool in types)):
            kind = "a boolean" if bool in types else ("a whole number" if int in types else "a string")
            raise InvalidRequest(f"`{name}` must be {kind} or null.", param=name)
    if isinstance(body.get("previous_response_id"), str) and not body["previous_response_id"]:
        raise InvalidRequest("`previous_response_id` must not be empty.", param="previous_response_id")


def upstream_body(body: dict[str, Any], context: list[Any], caller: str | None) -> dict[str, Any]:
    """What Mistral is sent: the expanded input, `store: false`, no `previous_response_id`, the caller's
    namespaced `prompt_cache_key`."""
    arguments = {key: value for key, value in body.items() if key not in ("previous_response_id", "store")}
    arguments.update(input=context, store=False)
    if body.get("stream") is not True:
        arguments.pop("stream", None)
    limits.check(arguments)  # the expanded input is still within the gateway's JSON limits
    return prompt_cache.namespaced(arguments, caller)


def charged_form(arguments: dict[str, Any]) -> dict[str, Any]:
    """The request as token_bound.estimate_tokens reads it: its whole text as the prompt bound, `max_output_tokens`
    (or the default) as the completion (an `input` key would be read as embeddings, with no completion)."""
    request = {key: value for key, value in arguments.items() if key != "input"}
    return {**request, "context": arguments.get("input"), "max_tokens": arguments.get("max_output_tokens")}


# --- the upstream calls (the pass-through's HTTP client, under the one retry policy) ----------------------


def _request_parts(arguments: dict[str, Any], accept: str) -> tuple[str, dict[str, str], bytes]:
    headers = {
        "authorization": f"Bearer {current().keys.mistral()}",
        "content-type": "application/json",
        "accept": accept,
    }
    return f"{settings().server_url}/v1/responses", headers, json.dumps(arguments, ensure_ascii=False).encode()


def _ask(arguments: dict[str, Any], timeout_ms: int) -> dict[str, Any]:
    url, headers, content = _request_parts(arguments, "application/json")
    response = relay.shared_client().post(url, content=content, headers=headers, timeout=timeout_ms / 1000)
    if not 200 <= response.status_code < 300:
        raise retry.StatusFailure(response.status_code, response.headers, response.content)
    try:
        data = json.loads(response.content)
    except ValueError:
        raise UpstreamError("Mistral returned an answer the gateway could not read.") from None
    if not isinstance(data, dict) or not isinstance(data.get("output"), list):
        raise UpstreamError("Mistral returned an answer the gateway could not read.")
    return data


def _open(arguments: dict[str, Any], timeout_ms: int, idle_ms: int) -> mistral.UpstreamStream:
    """Mistral's stream, opened (status 200 seen); the read timeout is the stream's idle timeout."""
    url, headers, content = _request_parts(arguments, "text/event-stream")
    client = relay.shared_client()
    request = client.build_request(
        "POST", url, content=content, headers=headers, timeout=min(timeout_ms, idle_ms) / 1000
    )
    response = client.send(request, stream=True)
    if not 200 <= response.status_code < 300:
        body = response.read()
        response.close()
        raise retry.StatusFailure(response.status_code, response.headers, body)
    if "text/event-stream" not in response.headers.get("content-type", ""):
        response.close()
        raise UpstreamError("Mistral answered a streamed request without an event stream.")
    return mistral.UpstreamStream(response)


# --- token counts ------------------------------------------------------------------------------------------


def count_input_tokens(body: dict[str, Any], *, caller: str | None, deadline: Deadline) -> answers.Answer:
    """POST /v1/responses/input_tokens: Mistral counts (stateless); a `previous_response_id` of the caller's own
    is expanded first, as for a create. One request against the budgets, no tokens."""

    previous_id = body.get("previous_response_id")
    if previous_id is not None and not isinstance(previous_id, str):
        raise InvalidRequest("`previous_response_id` must be a string or null.", param="previous_response_id")
    turn = body.get("input")
    if turn is not None and not isinstance(turn, str | list):
        raise InvalidRequest("`input` must be a string or a list of input items.", param="input")
    arguments = {key: value for key, value in body.items() if key != "previous_response_id"}
    if previous_id:
        arguments["input"] = [
            *responses_stored.expanded_history(caller, previous_id),
            *(responses_stored.input_items(turn) if turn else []),
        ]
    content = json.dumps(arguments, ensure_ascii=False).encode()
    forward = relay.Forward(
        "POST",
        "responses/input_tokens",
        "",
        {"content-type": "application/json", "accept": "application/json"},
        content,
        caller,
        CacheControl(read=False, store=False),
        deadline,
    )
    with current().budgets.spending(caller, {}) as spending:
        relayed = relay.relay(forward)
        spending.settle(0)
    if relayed.status >= 400:
        raise relay.RelayedRejection(relayed)
    relay.json_object(relayed)
    return answers.Answer(body=relayed.body.decode(), cache_status="BYPASS", headers=spending.headers)
