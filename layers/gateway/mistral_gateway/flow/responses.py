"""`/v1/responses`: OpenAI-Responses clients through Mistral's stateless Responses API, with stored responses.

Mistral's `/v1/responses` takes `store` only as false (or null) and cannot be asked for a response again;
OpenAI-Responses clients (the openai SDK's `responses.create`, the Vercel AI SDK's `openai(model)`, agent SDKs)
default to `store: true` and chain turns with `previous_response_id`. So:

- `store` defaults to true, as OpenAI's does; Mistral is always sent `store: false`. A stored response is
  kept by the gateway, per caller, in the responses table (responses_store.py) for RESPONSES_TTL_SECONDS.
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

A streamed request (`stream: true`) is forwarded event by event as Mistral writes it (`ResponseStream`, the
streaming function's LiveStream reading Responses events); the completed response is stored at the end, from
its `response.completed` (or `response.incomplete`) event.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import replace
from typing import Any

from mistral_gateway.container import current, settings
from mistral_gateway.flow import service, streaming
from mistral_gateway.platform import economics, observability
from mistral_gateway.platform.deadline import Deadline
from mistral_gateway.platform.errors import (
    InvalidRequest,
    NotFound,
    RequestValidationFailed,
    ServiceUnavailable,
    UpstreamError,
)
from mistral_gateway.platform.observability import logger
from mistral_gateway.policies import quota
from mistral_gateway.requests import limits, prompt_cache
from mistral_gateway.requests.http import CacheControl
from mistral_gateway.stores.responses import ResponsesStore, StoredResponse, StoreUnavailable
from mistral_gateway.upstream import mistral, retry, sse

ROUTE = "responses"
# What a response id may look like (Mistral's and OpenAI's are short word characters); anything else is a 404
# without a table read.
_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
# The events that end a Responses stream, with the finished response in their `response` field.
TERMINAL_EVENTS = ("response.completed", "response.incomplete", "response.failed")
STORED_STATUSES = ("response.completed", "response.incomplete")
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


def not_found(response_id: str) -> NotFound:
    """The one answer for a response the caller cannot have: another caller's, unknown, expired, deleted."""
    shown = observability.bounded(response_id)
    return NotFound(f"Response with id '{shown}' not found.", param="response_id", code="response_not_found")


def table() -> ResponsesStore:
    return current().responses


def _now() -> float:
    return current().clock()


# --- create ------------------------------------------------------------------------------------------------


def create(
    body: dict[str, Any], *, caller: str | None, control: CacheControl, deadline: Deadline, fallbacks: bool = True
) -> service.Answer | ResponseStream:
    """POST /v1/responses, plain or streamed. Raises a GatewayError for anything before the first byte."""
    started = time.perf_counter()
    check(body)
    service.check_model(body)
    previous_id = body.get("previous_response_id")
    turn = input_items(body["input"])
    context = [*expanded_history(caller, previous_id), *turn] if previous_id else turn
    arguments = upstream_body(body, context, caller)
    preflight(arguments)
    plan = Plan(caller, body.get("store") is not False, previous_id, context, len(turn), str(body["model"]))
    service.log_prompt(turn)
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
        return ResponseStream(plan, opened, spending, deadline, started, headers, control)
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
    service.account(answer_body.encode(), usage)
    answer = service.Answer(body=answer_body, cache_status="BYPASS", usage=usage, headers=spending.headers)
    return service.priced(answer, {"model": data.get("model") or body["model"]})


class Plan:
    """What one create request does with its answer: whether and how it is stored."""

    def __init__(
        self, caller: str | None, store: bool, previous_id: str | None, context: list[Any], turn_items: int, model: str
    ) -> None:
        self.caller = caller
        self.store = store
        self.previous_id = previous_id
        self.context = context
        self.turn_items = turn_items
        self.model = model

    def finished(self, response: dict[str, Any]) -> dict[str, Any]:
        """The response as the caller gets it (plain requests): stored when asked, `store` saying whether it
        was, `previous_response_id` the caller's own (Mistral never saw it)."""
        response = {**response, "previous_response_id": self.previous_id}
        response["store"] = self.keep(response)
        return response

    def keep(self, response: dict[str, Any]) -> bool:
        """Store the response when asked; False when not asked or when it could not be stored (the caller
        then sees `store: false`: the answer is not lost, but it cannot be chained or read back)."""
        if not self.store or not isinstance(response.get("id"), str) or not _ID.match(response["id"]):
            return False
        now = _now()
        expires_at = int(now) + settings().responses_ttl_seconds
        stored = StoredResponse({**response, "store": True}, self.context, self.turn_items, expires_at)
        kept = table().put(self.caller, stored, now)
        observability.log_keys(response_stored=kept)
        return kept


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


def input_items(value: str | list[Any]) -> list[Any]:
    """The input as a list of items: a string is one user message (OpenAI's and Mistral's reading of it)."""
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    return list(value)


def expanded_history(caller: str | None, previous_id: str) -> list[Any]:
    """The caller's own earlier turns before `previous_id`'s answer, and that answer's output, as input items.
    404 for any response the caller cannot have; 503 when the table cannot be read (never a partial history)."""
    if not _ID.match(previous_id):
        raise _previous_not_found(previous_id)
    try:
        stored = table().get(caller, previous_id, _now())
    except StoreUnavailable:
        raise ServiceUnavailable(
            "Stored responses cannot be read right now, so the earlier turns of this chain are unavailable; "
            "retry shortly.",
            code="response_store_unavailable",
            headers={"Retry-After": "1"},
        ) from None
    if stored is None:
        raise _previous_not_found(previous_id)
    output = stored.response.get("output")
    return [*stored.context, *(output if isinstance(output, list) else [])]


def _previous_not_found(previous_id: str) -> NotFound:
    error = not_found(previous_id)
    error.param = "previous_response_id"
    return error


def upstream_body(body: dict[str, Any], context: list[Any], caller: str | None) -> dict[str, Any]:
    """What Mistral is sent: the expanded input, `store: false`, no `previous_response_id`, the caller's
    namespaced `prompt_cache_key`."""
    arguments = {key: value for key, value in body.items() if key not in ("previous_response_id", "store")}
    arguments.update(input=context, store=False)
    if body.get("stream") is not True:
        arguments.pop("stream", None)
    limits.check(arguments)  # the expanded input is still within the gateway's JSON limits
    return prompt_cache.namespaced(arguments, caller)


def preflight(arguments: dict[str, Any]) -> None:
    """The caller's 422 for a request the SDK's own model of Mistral's Responses API refuses, before anything
    is reserved or sent."""
    from mistralai.client import models as sdk_models
    from pydantic import ValidationError

    from mistral_gateway.upstream import refusals

    try:
        sdk_models.CreateResponseRequest.model_validate(arguments)
    except ValidationError as error:
        raise refusals.classify(error, None).error from None


def charged_form(arguments: dict[str, Any]) -> dict[str, Any]:
    """The request as quota.estimate_tokens reads it: its whole text as the prompt bound, `max_output_tokens`
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


def _client() -> Any:
    from mistral_gateway.flow import passthrough

    return passthrough._client()


def _ask(arguments: dict[str, Any], timeout_ms: int) -> dict[str, Any]:
    url, headers, content = _request_parts(arguments, "application/json")
    response = _client().post(url, content=content, headers=headers, timeout=timeout_ms / 1000)
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
    client = _client()
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


# --- streamed --------------------------------------------------------------------------------------------


class ResponseStream(streaming.LiveStream):
    """A streamed response in flight: Mistral's events forwarded one by one (LiveStream's queue, keep-alives,
    stop and wait), the finished response taken from the terminal event, stored, settled and counted."""

    def __init__(
        self,
        plan: Plan,
        opened: mistral.UpstreamStream,
        spending: quota.Spending,
        deadline: Deadline,
        started: float,
        headers: dict[str, str],
        control: CacheControl,
    ) -> None:
        self._plan = plan  # before the reader thread starts (LiveStream's constructor starts it)
        super().__init__(opened, "", replace(control, store=False), spending, deadline, started, headers)

    def _read(self) -> None:
        splitter = sse.EventSplitter()
        final: tuple[str, dict[str, Any]] | None = None
        ended = "cut"
        try:
            for data in self._upstream.chunks():
                for event in splitter.feed(data):
                    payload = sse.event_data(event)
                    if payload is not None and '"response.' in payload:
                        final = terminal(payload) or final
                    self._forward(event, payload)
                if self._deadline.remaining_ms() <= 0:
                    self._stop_reason = self._stop_reason or "too_long"
                    self._upstream.close()
                    break
            if self._stop_reason is None:
                ended = "complete" if final is not None and not splitter.pending.strip() else "cut"
        except Exception as error:  # a timeout, a cut connection, or our own stop()
            ended = "idle_timeout" if streaming._is_timeout(error) else "cut"
        if self._stop_reason is not None:
            ended = self._stop_reason
        failure = streaming._failure(ended)
        if failure is not None and ended != "hung_up":
            self._queue.put(sse.error_event(failure.body()))
        try:
            self._settle(ended, final)
        except Exception as error:  # bookkeeping must never keep the caller's stream open
            observability.log_unexpected("stream bookkeeping failed", error)
        finally:
            self._finished.set()
            self._queue.put(streaming._END)

    def _settle(self, ended: str, final: tuple[str, dict[str, Any]] | None) -> None:
        outcome = self.outcome
        outcome.ended = ended
        outcome.duration_ms = (time.perf_counter() - self._started) * 1000
        response = final[1] if final is not None else {}
        usage = economics.token_usage(response.get("usage"))
        outcome.usage = {key: usage[key] for key in ("prompt_tokens", "completion_tokens") if key in usage}
        if usage:
            self._spending.settle(usage["prompt_tokens"] + usage["completion_tokens"])
        else:  # what Mistral billed is unknown: the budget keeps the whole reservation (see streaming.py)
            self._spending.settle(self._spending.reserved_tokens)
        if ended == "complete" and final is not None and final[0] in STORED_STATUSES:
            outcome.stored = self._plan.keep({**response, "previous_response_id": self._plan.previous_id})
        elif ended != "complete":
            observability.count(observability.STREAMS_ENDED_EARLY)
            if ended in ("cut", "idle_timeout"):
                mistral.stream_failed(
                    current().upstream(retry.MISTRAL), "timeout" if ended == "idle_timeout" else "connection"
                )
        if usage:
            service.account(b"", usage)
            current().prices.headers_and_metrics(response.get("model") or self._plan.model, "MISS", usage)
        if outcome.first_token_ms is not None:
            observability.milliseconds(observability.TIME_TO_FIRST_TOKEN, outcome.first_token_ms)
        observability.milliseconds(observability.STREAM_DURATION, outcome.duration_ms)
        logger.append_keys(**outcome.log_fields())


def terminal(payload: str) -> tuple[str, dict[str, Any]] | None:
    """(event type, finished response) when `payload` is a Responses stream's last event, else None."""
    try:
        data = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("type") not in TERMINAL_EVENTS:
        return None
    response = data.get("response")
    return (str(data["type"]), response) if isinstance(response, dict) else None


def buffered(outcome: service.Answer | ResponseStream) -> service.Answer:
    """For the buffered API function (sam local): a stream delivered as one SSE body once it has ended."""
    if isinstance(outcome, service.Answer):
        return outcome
    events = b"".join(event for event in outcome.events() if event != sse.KEEPALIVE)
    outcome.wait(10.0)
    return service.Answer(
        body=events.decode(), cache_status="BYPASS", content_type=service.EVENT_STREAM, headers=outcome.headers
    )


# --- stored responses: read, delete, input items, token counts ---------------------------------------------


def _stored(caller: str | None, response_id: str) -> StoredResponse:
    if not _ID.match(response_id):
        raise not_found(response_id)
    try:
        stored = table().get(caller, response_id, _now())
    except StoreUnavailable:
        raise _unavailable() from None
    if stored is None:
        raise not_found(response_id)
    return stored


def _unavailable() -> ServiceUnavailable:
    return ServiceUnavailable(
        "Stored responses cannot be read right now; retry shortly.",
        code="response_store_unavailable",
        headers={"Retry-After": "1"},
    )


def retrieve(response_id: str, *, caller: str | None) -> service.Answer:
    """GET /v1/responses/{id}: the caller's own stored response."""
    stored = _stored(caller, response_id)
    return service.Answer(body=json.dumps(stored.response, ensure_ascii=False), cache_status="BYPASS")


def delete(response_id: str, *, caller: str | None) -> service.Answer:
    """DELETE /v1/responses/{id}: OpenAI's answer shape; 404 for what the caller cannot have."""
    if not _ID.match(response_id):
        raise not_found(response_id)
    try:
        deleted = table().delete(caller, response_id, _now())
    except StoreUnavailable:
        raise _unavailable() from None
    if not deleted:
        raise not_found(response_id)
    return service.Answer(
        body=json.dumps({"id": response_id, "object": "response", "deleted": True}), cache_status="BYPASS"
    )


def list_input_items(
    response_id: str,
    *,
    caller: str | None,
    order: str | None = None,
    limit: str | None = None,
    after: str | None = None,
) -> service.Answer:
    """GET /v1/responses/{id}/input_items: this turn's own input items (not the earlier turns'), OpenAI's list shape
    and query (`order` desc by default, `limit` 1-100 (20), `after` an item id)."""
    if order not in (None, "asc", "desc"):
        raise InvalidRequest("`order` must be asc or desc.", param="order")
    try:
        count = 20 if limit is None else int(limit)
    except ValueError:
        count = 0
    if not 1 <= count <= 100:
        raise InvalidRequest("`limit` must be a whole number from 1 to 100.", param="limit")
    stored = _stored(caller, response_id)
    items = stored.context[len(stored.context) - stored.turn_items :]
    if order != "asc":
        items = items[::-1]
    ids = [item.get("id") if isinstance(item, dict) else None for item in items]
    if after is not None and after in ids:
        items = items[ids.index(after) + 1 :]
    page = items[:count]
    page_ids = [item.get("id") for item in page if isinstance(item, dict) and isinstance(item.get("id"), str)]
    listing = {
        "object": "list",
        "data": page,
        "first_id": page_ids[0] if page_ids else None,
        "last_id": page_ids[-1] if page_ids else None,
        "has_more": len(items) > count,
    }
    return service.Answer(body=json.dumps(listing, ensure_ascii=False), cache_status="BYPASS")


def count_input_tokens(body: dict[str, Any], *, caller: str | None, deadline: Deadline) -> service.Answer:
    """POST /v1/responses/input_tokens: Mistral counts (stateless); a `previous_response_id` of the caller's own
    is expanded first, as for a create. One request against the budgets, no tokens."""
    from mistral_gateway.flow import passthrough

    previous_id = body.get("previous_response_id")
    if previous_id is not None and not isinstance(previous_id, str):
        raise InvalidRequest("`previous_response_id` must be a string or null.", param="previous_response_id")
    turn = body.get("input")
    if turn is not None and not isinstance(turn, str | list):
        raise InvalidRequest("`input` must be a string or a list of input items.", param="input")
    arguments = {key: value for key, value in body.items() if key != "previous_response_id"}
    if previous_id:
        arguments["input"] = [*expanded_history(caller, previous_id), *(input_items(turn) if turn else [])]
    content = json.dumps(arguments, ensure_ascii=False).encode()
    forward = passthrough.Forward(
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
        relayed = passthrough.relay(forward)
        spending.settle(0)
    if relayed.status >= 400:
        raise passthrough.RelayedRejection(relayed)
    passthrough.json_object(relayed)
    return service.Answer(body=relayed.body.decode(), cache_status="BYPASS", headers=spending.headers)
