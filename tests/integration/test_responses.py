"""/v1/responses through the gateway with the real openai SDK, two caller keys, as `make serve` serves it.

Mistral's Responses API is stateless; the gateway stores responses per caller (a DynamoDB table from the
template, in moto), serves GET/DELETE from it and expands a caller's own `previous_response_id`. Another
caller's response is exactly as absent as one that never existed, and nothing about it reaches Mistral.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from gateway_dev.emulator.server import Fault

KEY_A, KEY_B = "responses-key-alice", "responses-key-bob"
ID_A, ID_B = "key-id-alice", "key-id-bob"
MODEL = "mistral-small-latest"
RESPONSES = "/v1/responses"
TABLE = "mistral-gateway-ResponsesTable"


@pytest.fixture
def url(gateway: Any, keyed_http_gateway: Any) -> str:
    return str(keyed_http_gateway({KEY_A: ID_A, KEY_B: ID_B}))


def openai_client(url: str, key: str) -> Any:
    from openai import OpenAI

    return OpenAI(api_key=key, base_url=f"{url}/v1", max_retries=0)


@pytest.fixture
def alice(url: str) -> Any:
    return openai_client(url, KEY_A)


@pytest.fixture
def bob(url: str) -> Any:
    return openai_client(url, KEY_B)


def sent_to_mistral(emulator: Any) -> list[dict[str, Any]]:
    return [request.json for request in emulator.requests if request.path == RESPONSES]


def wait_for(found: Any, seconds: float = 10.0) -> Any:
    """What `found()` returns once it is not empty (a condition, not a timing assertion)."""
    import time

    give_up = time.monotonic() + seconds
    while not (result := found()) and time.monotonic() < give_up:
        time.sleep(0.02)
    return result


def served_lines(gateway: Any) -> list[dict[str, Any]]:
    return [record for record in gateway.log_records() if record.get("message") == "request served"]


# --- plain ----------------------------------------------------------------------------------------------------


def test_a_plain_response_is_answered_stored_and_read_back_by_its_owner(alice, emulator) -> None:
    # When Alice creates a response as the openai SDK does (store defaults to true)
    response = alice.responses.create(model=MODEL, input="What is the capital of France?")
    # Then she gets Mistral's answer, marked stored, and Mistral was told not to store
    assert response.output_text.startswith("Emulated answer to: What is the capital of France?")
    assert response.store is True and response.usage.input_tokens > 0
    assert sent_to_mistral(emulator)[-1]["store"] is False
    # And she can read it back by id, and list its input items
    again = alice.responses.retrieve(response.id)
    assert again.id == response.id and again.output_text == response.output_text
    items = alice.responses.input_items.list(response.id)
    assert [item.content for item in items.data] == ["What is the capital of France?"]  # type: ignore[union-attr]


def test_usage_and_cost_headers_and_the_served_line_meter_a_response(alice, gateway, emulator) -> None:
    raw = alice.responses.with_raw_response.create(model=MODEL, input="metered like chat", store=False)
    assert raw.headers["x-cache"] == "BYPASS"
    assert int(raw.headers["x-usage-prompt-tokens"]) > 0 and int(raw.headers["x-usage-completion-tokens"]) > 0
    assert float(raw.headers["x-estimated-cost-usd"]) > 0
    served = [line for line in served_lines(gateway) if line.get("route") == RESPONSES]
    assert served and served[-1]["status"] == 200 and served[-1]["prompt_tokens"] > 0


def test_store_false_is_answered_but_not_kept(alice) -> None:
    from openai import NotFoundError

    response = alice.responses.create(model=MODEL, input="forget me", store=False)
    assert response.store is False
    with pytest.raises(NotFoundError):
        alice.responses.retrieve(response.id)


def test_previous_response_id_expands_the_callers_own_history(alice, emulator) -> None:
    # Given two turns chained by previous_response_id
    first = alice.responses.create(model=MODEL, input="My name is Alice.", instructions="Be brief.")
    second = alice.responses.create(model=MODEL, input="What is my name?", previous_response_id=first.id)
    third = alice.responses.create(model=MODEL, input="And again?", previous_response_id=second.id)
    # Then Mistral got the whole conversation each time, never the id itself
    sent = sent_to_mistral(emulator)
    assert all("previous_response_id" not in body for body in sent)
    roles = [[item.get("role") for item in body["input"]] for body in sent]
    assert roles == [["user"], ["user", "assistant", "user"], ["user", "assistant", "user", "assistant", "user"]]
    assert sent[2]["input"][3]["content"][0]["text"] == second.output_text
    # And the answer says which response it follows; instructions are not carried over (OpenAI's rule)
    assert third.previous_response_id == second.id and "instructions" not in sent[1]
    assert "(turn 3)" in third.output_text


# --- isolation ------------------------------------------------------------------------------------------------


def test_another_callers_response_is_exactly_as_absent_as_an_unknown_one(alice, bob, url, emulator) -> None:
    import httpx

    owned = alice.responses.create(model=MODEL, input="Alice's secret plan")
    calls = emulator.calls(RESPONSES)

    def raw(method: str, path: str, key: str, body: Any = None) -> httpx.Response:
        return httpx.request(method, f"{url}{path}", json=body, headers={"Authorization": f"Bearer {key}"})

    made_up = "resp_" + "0" * 32
    for path, method in [
        (f"{RESPONSES}/{{}}", "GET"),
        (f"{RESPONSES}/{{}}", "DELETE"),
        (f"{RESPONSES}/{{}}/input_items", "GET"),
    ]:
        foreign = raw(method, path.format(owned.id), KEY_B)
        unknown = raw(method, path.format(made_up), KEY_B)
        # Then Bob gets the same 404 for Alice's id as for a made-up one (only the id he sent differs)
        assert foreign.status_code == unknown.status_code == 404
        assert foreign.json() == {**unknown.json(), "message": unknown.json()["message"].replace(made_up, owned.id)}
        assert foreign.json()["code"] == "response_not_found"
    # And chaining from Alice's response is refused the same way, before any upstream call
    foreign = raw("POST", RESPONSES, KEY_B, {"model": MODEL, "input": "and?", "previous_response_id": owned.id})
    unknown = raw("POST", RESPONSES, KEY_B, {"model": MODEL, "input": "and?", "previous_response_id": made_up})
    assert foreign.status_code == unknown.status_code == 404
    assert foreign.json()["param"] == unknown.json()["param"] == "previous_response_id"
    assert emulator.calls(RESPONSES) == calls
    # And Alice's response is still hers, untouched by Bob's DELETE
    assert alice.responses.retrieve(owned.id).output_text == owned.output_text


def test_the_openai_sdk_raises_not_found_for_another_callers_response(alice, bob) -> None:
    from openai import NotFoundError

    owned = alice.responses.create(model=MODEL, input="mine only")
    with pytest.raises(NotFoundError):
        bob.responses.retrieve(owned.id)
    with pytest.raises(NotFoundError):
        bob.responses.create(model=MODEL, input="continue", previous_response_id=owned.id)


def test_a_deleted_response_is_gone_and_cannot_be_chained(alice) -> None:
    from openai import NotFoundError

    response = alice.responses.create(model=MODEL, input="delete me later")
    alice.responses.delete(response.id)
    with pytest.raises(NotFoundError):
        alice.responses.retrieve(response.id)
    with pytest.raises(NotFoundError):
        alice.responses.delete(response.id)
    with pytest.raises(NotFoundError):
        alice.responses.create(model=MODEL, input="continue", previous_response_id=response.id)


def test_two_callers_creating_and_chaining_at_once_never_see_each_other(alice, bob, emulator) -> None:
    results: dict[str, list[str]] = {"alice": [], "bob": []}

    def converse(name: str, client: Any) -> None:
        previous = None
        for turn in range(3):
            response = client.responses.create(model=MODEL, input=f"{name} turn {turn}", previous_response_id=previous)
            previous = response.id
            results[name].append(response.id)

    threads = [threading.Thread(target=converse, args=(n, c)) for n, c in (("alice", alice), ("bob", bob))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    for body in sent_to_mistral(emulator):
        texts = " ".join(str(item.get("content")) for item in body["input"])
        assert not ("alice" in texts and "bob" in texts)  # no history ever mixes the two callers
    assert len(results["alice"]) == len(results["bob"]) == 3


# --- streamed -------------------------------------------------------------------------------------------------


def test_a_streamed_response_arrives_event_by_event_and_is_stored_at_the_end(alice, emulator, gateway) -> None:
    gate = threading.Event()
    emulator.script(Fault(gate=gate))
    # When Alice streams while Mistral holds the rest of its answer after two events
    stream = alice.responses.create(model=MODEL, input="stream it please", stream=True)
    events = iter(stream)
    first = next(events)
    # Then the first event is in her hands before Mistral has finished
    assert first.type == "response.created" and not gate.is_set()
    gate.set()
    rest = list(events)
    kinds = [event.type for event in rest]
    assert "response.output_text.delta" in kinds and kinds[-1] == "response.completed"
    completed = rest[-1].response
    text = "".join(event.delta for event in rest if event.type == "response.output_text.delta")
    assert text == completed.output_text and text.startswith("Emulated answer to: stream it please")
    # And the completed response was stored for her, and can be chained from
    assert alice.responses.retrieve(completed.id).output_text == text
    follow = alice.responses.create(model=MODEL, input="and then?", previous_response_id=completed.id)
    assert sent_to_mistral(emulator)[-1]["input"][1]["content"][0]["text"] == text
    assert follow.previous_response_id == completed.id
    # And the served line was written when the stream ended, with its usage
    streamed = [line for line in served_lines(gateway) if line.get("stream_ended")]
    assert streamed[0]["stream_ended"] == "complete" and streamed[0]["stored"] is True
    assert streamed[0]["prompt_tokens"] > 0


def test_a_cut_stream_ends_with_an_error_and_nothing_is_stored(alice, bob, emulator, gateway) -> None:
    from openai import APIError

    emulator.script(Fault(stream_cut=True))
    seen: list[Any] = []
    with pytest.raises(APIError):
        for event in alice.responses.create(model=MODEL, input="this will be cut", stream=True):
            seen.append(event)
    created = seen[0].response.id
    # (the SDK raises on the error event, before the server has finished the stream and written its line)
    streamed = wait_for(lambda: [line for line in served_lines(gateway) if line.get("stream_ended")])
    assert streamed[0]["stream_ended"] == "cut" and streamed[0]["stored"] is False
    from openai import NotFoundError

    with pytest.raises(NotFoundError):
        alice.responses.retrieve(created)


def test_a_stream_chained_from_another_callers_response_is_refused_before_mistral(alice, bob, emulator) -> None:
    from openai import NotFoundError

    owned = alice.responses.create(model=MODEL, input="not for bob")
    calls = emulator.calls(RESPONSES)
    with pytest.raises(NotFoundError):
        for _ in bob.responses.create(model=MODEL, input="x", previous_response_id=owned.id, stream=True):
            pass
    assert emulator.calls(RESPONSES) == calls


# --- TTL, table failures, bad input ----------------------------------------------------------------------------


def test_an_expired_response_is_gone_although_dynamodb_has_not_deleted_it(alice, gateway, monkeypatch) -> None:
    from openai import NotFoundError

    from mistral_gateway import container

    response = alice.responses.create(model=MODEL, input="short lived")
    stored_until = container.current().clock() + container.current().settings.responses_ttl_seconds
    monkeypatch.setattr(container.current(), "clock", lambda: stored_until + 1)
    with pytest.raises(NotFoundError):
        alice.responses.retrieve(response.id)
    with pytest.raises(NotFoundError):
        alice.responses.create(model=MODEL, input="continue", previous_response_id=response.id)


@pytest.fixture
def broken_table(aws: Any) -> Iterator[None]:
    import boto3

    boto3.client("dynamodb").delete_table(TableName=TABLE)
    yield


def test_a_failing_table_is_a_503_for_reads_and_never_a_half_remembered_chain(alice, emulator, broken_table) -> None:
    import httpx
    from openai import InternalServerError

    # A create still answers (the answer is not lost) and says it was not stored
    response = alice.responses.create(model=MODEL, input="store fails")
    assert response.store is False and response.output_text
    calls = emulator.calls(RESPONSES)
    # Reads and chains are a 503 with Mistral's error shape; a chain never reaches Mistral
    with pytest.raises(InternalServerError) as failed:
        alice.responses.create(model=MODEL, input="continue", previous_response_id="resp_abc")
    assert failed.value.status_code == 503 and emulator.calls(RESPONSES) == calls
    reply = httpx.get(f"{alice.base_url}responses/resp_abc", headers={"Authorization": f"Bearer {KEY_A}"}, timeout=10)
    assert reply.status_code == 503 and reply.json()["code"] == "response_store_unavailable"


@pytest.mark.parametrize(
    "body",
    [
        {"model": MODEL},
        {"model": MODEL, "input": 5},
        {"model": MODEL, "input": []},
        {"input": "no model"},
        {"model": MODEL, "input": "x", "store": "yes"},
        {"model": MODEL, "input": "x", "stream": "true"},
        {"model": MODEL, "input": "x", "previous_response_id": 7},
        {"model": MODEL, "input": "x", "previous_response_id": ""},
        {"model": MODEL, "input": "x", "previous_response_id": "../../etc"},
        {"model": MODEL, "input": "x", "max_output_tokens": "many"},
        {"model": MODEL, "input": "x", "background": True},
        {"model": MODEL, "input": [{"role": "user", "content": 42}]},
        ["not", "an", "object"],
    ],
)
def test_bad_input_is_a_4xx_and_never_reaches_mistral(url, emulator, body) -> None:
    import httpx

    reply = httpx.post(f"{url}{RESPONSES}", json=body, headers={"Authorization": f"Bearer {KEY_A}"}, timeout=10)
    assert 400 <= reply.status_code < 500, reply.text
    assert reply.json()["object"] == "error" and reply.json()["message"]
    assert emulator.calls(RESPONSES) == 0


@pytest.mark.parametrize(
    "path", ["/v1/responses/%2e%2e", "/v1/responses/a.b", "/v1/responses/a%2Fb", "/v1/responses/" + "x" * 300]
)
def test_malformed_ids_are_4xx_errors_never_a_500(url, path) -> None:
    import httpx

    # (an encoded slash decodes to a deeper path: the pass-through's table answers it, a 4xx too)
    reply = httpx.get(f"{url}{path}", headers={"Authorization": f"Bearer {KEY_A}"}, timeout=10)
    assert 400 <= reply.status_code < 500 and reply.json()["object"] == "error"


def test_mistral_refusing_a_response_is_relayed_and_nothing_is_stored(alice, emulator) -> None:
    from openai import BadRequestError

    emulator.script(Fault(status=400))
    with pytest.raises(BadRequestError):
        alice.responses.create(model=MODEL, input="refused upstream")


def test_input_tokens_are_counted_by_mistral_with_the_callers_history(url, alice, emulator) -> None:
    import httpx

    first = alice.responses.create(model=MODEL, input="one two three four")
    reply = httpx.post(
        f"{url}{RESPONSES}/input_tokens",
        json={"model": MODEL, "input": "five", "previous_response_id": first.id},
        headers={"Authorization": f"Bearer {KEY_A}"},
        timeout=10,
    )
    assert reply.status_code == 200 and reply.json()["input_tokens"] > 4
    sent = [r.json for r in emulator.requests if r.path == f"{RESPONSES}/input_tokens"][-1]
    assert "previous_response_id" not in sent and len(sent["input"]) == 3


# --- budgets and the buffered function -------------------------------------------------------------------------


def test_responses_spend_the_callers_budget_and_are_refused_when_it_is_spent(alice, bob) -> None:
    from openai import RateLimitError

    from gateway_dev.ops import quota as quota_admin

    quota_table = "mistral-gateway-QuotaTable"
    quota_admin.set_limits(quota_table, ID_A, {"requests_per_minute": 2})
    response = alice.responses.create(model=MODEL, input="one")
    stream = alice.responses.create(model=MODEL, input="two", stream=True)
    assert [event.type for event in stream][-1] == "response.completed"
    # Settled to what Mistral reported, for the plain and the streamed response alike
    used = quota_admin.show(quota_table, ID_A)["usage"]["minute"]
    assert used["requests"] == 2 and used["tokens"] >= response.usage.total_tokens
    with pytest.raises(RateLimitError):
        alice.responses.create(model=MODEL, input="three")
    assert bob.responses.create(model=MODEL, input="bob is not limited").output_text  # one caller's budget only


def test_the_buffered_function_answers_a_stream_as_one_sse_body(gateway, emulator) -> None:
    # (sam local invoke cannot stream: the API function serves the route too)
    body = {"model": MODEL, "input": "buffered stream", "stream": True}
    answer = gateway.request("POST", RESPONSES, body, api_key_id=ID_A)
    assert answer.status == 200 and (answer.header("Content-Type") or "").startswith("text/event-stream")
    kinds = [line.removeprefix("event: ") for line in answer.text.splitlines() if line.startswith("event: ")]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    completed = next(line for line in answer.text.splitlines() if '"response.completed"' in line)
    response_id = json.loads(completed.removeprefix("data: "))["response"]["id"]
    stored = gateway.request("GET", f"{RESPONSES}/{response_id}", api_key_id=ID_A)
    assert stored.status == 200 and stored.json["store"] is True
    assert gateway.request("GET", f"{RESPONSES}/{response_id}", api_key_id=ID_B).status == 404


def test_input_items_are_this_turns_own_newest_first_and_paged(alice, url) -> None:
    import httpx

    first = alice.responses.create(model=MODEL, input="earlier turn")
    items = [{"role": "user", "content": f"item {n}"} for n in range(3)]
    second = alice.responses.create(model=MODEL, input=items, previous_response_id=first.id)  # type: ignore[arg-type]
    listed = alice.responses.input_items.list(second.id)
    assert [item.content for item in listed.data] == ["item 2", "item 1", "item 0"]  # type: ignore[union-attr]
    ascending = alice.responses.input_items.list(second.id, order="asc", limit=2)
    assert [item.content for item in ascending.data] == ["item 0", "item 1"]  # type: ignore[union-attr]
    assert ascending.has_more is True
    bad = httpx.get(f"{url}{RESPONSES}/{second.id}/input_items?limit=500", headers={"Authorization": f"Bearer {KEY_A}"})
    assert bad.status_code == 400 and bad.json()["param"] == "limit"
