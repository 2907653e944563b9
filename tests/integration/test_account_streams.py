"""Conversations and agents completions stream event by event through the streaming function, with two caller
keys and the real mistralai SDK over HTTP (as `make serve` serves them).

The emulator holds a stream at a gate (before its third event) until the test opens it: a client that has the
first events in hand while the gate is shut proves they were forwarded before Mistral finished, with no timing
threshold. Cross-caller attempts are 404s that never reach Mistral; a streamed start is recorded for its caller
before its first byte leaves, or undone (503) when the ledger cannot record it.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import httpx
import pytest
from mistralai.client import Mistral
from sdk_callers import KEYS, status_of, two_callers

from gateway_dev.emulator.server import Fault
from mistral_gateway.container import current

MODEL = "mistral-small-latest"


@pytest.fixture
def url(keyed_http_gateway: Any) -> str:
    return str(keyed_http_gateway(KEYS))


@pytest.fixture
def clients(url: str) -> tuple[Mistral, Mistral]:
    return two_callers(url)


def served_lines(gateway: Any) -> list[dict[str, Any]]:
    return [record for record in gateway.log_records() if record.get("message") == "request served"]


def wait_for(condition: Any) -> Any:
    pause = threading.Event()
    for _ in range(500):
        if found := condition():
            return found
        pause.wait(0.02)
    raise AssertionError("condition never became true")


def streamed_lines(gateway: Any, route: str) -> list[dict[str, Any]]:
    return [line for line in served_lines(gateway) if line.get("route") == route and line.get("stream_ended")]


def test_a_streamed_conversation_start_arrives_event_by_event_and_is_its_starters(clients, emulator, gateway) -> None:
    alice, bob = clients
    # Given Mistral holding the conversation's stream after its first events
    gate = threading.Event()
    emulator.script(Fault(gate=gate))
    stream = alice.beta.conversations.start_stream(inputs="stream this answer to me slowly", model=MODEL)
    events = iter(stream)
    # When Alice reads, Then the first events are hers while Mistral has not finished
    first = next(events)
    second = next(events)
    assert first.event == "conversation.response.started" and second.event == "message.output.delta"
    assert not gate.is_set()
    conversation_id = first.data.conversation_id
    # ...and the conversation was already recorded as hers (before the first byte left)
    assert current().ledger.ids("key-a", "conversation") == [conversation_id]
    gate.set()
    rest = list(events)
    assert rest[-1].event == "conversation.response.done"
    text = second.data.content + "".join(event.data.content for event in rest[:-1])
    assert text.startswith("Emulated answer to: stream this answer")
    # And the served line has the turn's usage, from the last event
    (line,) = wait_for(lambda: streamed_lines(gateway, "/v1/conversations"))
    assert line["stream_ended"] == "complete" and line["status"] == 200 and line["caller"] == "key-a"
    assert line["prompt_tokens"] == rest[-1].data.usage.prompt_tokens
    assert line["completion_tokens"] == rest[-1].data.usage.completion_tokens
    # And Bob cannot see, append to, or restart it: 404s that never reach Mistral
    entry = alice.beta.conversations.get_history(conversation_id=conversation_id).entries[0].id
    before = emulator.calls()
    append = lambda: list(bob.beta.conversations.append_stream(conversation_id=conversation_id, inputs="x"))  # noqa: E731
    assert status_of(append) == 404
    restart = lambda: list(  # noqa: E731
        bob.beta.conversations.restart_stream(conversation_id=conversation_id, from_entry_id=entry, inputs="y")
    )
    assert status_of(restart) == 404
    assert status_of(lambda: bob.beta.conversations.get(conversation_id=conversation_id)) == 404
    assert emulator.calls() == before
    assert bob.beta.conversations.list() == []


def test_append_and_restart_stream_for_their_owner(clients, emulator, gateway) -> None:
    alice, bob = clients
    started = alice.beta.conversations.start(inputs="first turn", model=MODEL)
    conversation_id = started.conversation_id
    # Given Mistral holding the appended turn's stream
    gate = threading.Event()
    emulator.script(Fault(gate=gate))
    events = iter(alice.beta.conversations.append_stream(conversation_id=conversation_id, inputs="second turn"))
    first = next(events)
    assert first.data.conversation_id == conversation_id and next(events).event == "message.output.delta"
    assert not gate.is_set()
    gate.set()
    assert [event.event for event in events][-1] == "conversation.response.done"
    # When Alice restarts from her first entry, streamed
    entry = alice.beta.conversations.get_history(conversation_id=conversation_id).entries[0].id
    restarted = list(
        alice.beta.conversations.restart_stream(conversation_id=conversation_id, from_entry_id=entry, inputs="again")
    )
    branch = restarted[0].data.conversation_id
    # Then the branch is a new conversation, hers (recorded from the first event), and not Bob's
    assert branch != conversation_id and restarted[-1].event == "conversation.response.done"
    assert set(current().ledger.ids("key-a", "conversation")) == {conversation_id, branch}
    assert alice.beta.conversations.get(conversation_id=branch).id == branch
    before = emulator.calls()
    assert status_of(lambda: bob.beta.conversations.get_history(conversation_id=branch)) == 404
    assert emulator.calls() == before
    # And each streamed turn wrote one served line on the streaming function
    lines = wait_for(lambda: [line for line in served_lines(gateway) if line.get("stream_ended") == "complete"])
    assert {line["route"] for line in lines} >= {
        f"/v1/conversations/{conversation_id}",
        f"/v1/conversations/{conversation_id}/restart",
    }


def test_agents_completions_stream_event_by_event_for_the_agents_owner(clients, emulator, gateway) -> None:
    alice, bob = clients
    agent = alice.beta.agents.create(model=MODEL, name="helper", instructions="be kind")
    # Given Mistral holding the agent's stream after two events
    gate = threading.Event()
    emulator.script(Fault(gate=gate))
    events = iter(alice.agents.stream(agent_id=agent.id, messages=[{"role": "user", "content": "tell me more"}]))
    first, second = next(events), next(events)
    assert first.data.choices[0].delta.role == "assistant" and second.data.choices[0].delta.content
    assert not gate.is_set()
    gate.set()
    rest = list(events)
    assert rest[-1].data.usage is not None and rest[-1].data.choices[0].finish_reason == "stop"
    (line,) = wait_for(lambda: streamed_lines(gateway, "/v1/agents/completions"))
    assert line["stream_ended"] == "complete" and line["completion_tokens"] == rest[-1].data.usage.completion_tokens
    # And Bob cannot stream Alice's agent: a 404 that never reaches Mistral
    before = emulator.calls()
    refused = lambda: list(  # noqa: E731
        bob.agents.stream(agent_id=agent.id, messages=[{"role": "user", "content": "let me in"}])
    )
    assert status_of(refused) == 404
    assert emulator.calls() == before


def test_a_ledger_that_cannot_record_a_streamed_start_undoes_it_and_answers_503(url, emulator, monkeypatch) -> None:
    from botocore.exceptions import ClientError

    client = current().ledger.client
    throttled = ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "PutItem")
    monkeypatch.setattr(client, "put_item", lambda **_: (_ for _ in ()).throw(throttled))
    # When Alice starts a streamed conversation while the ledger cannot record
    body = {"model": MODEL, "inputs": "orphan?", "stream": True}
    answer = httpx.post(f"{url}/v1/conversations", json=body, headers={"Authorization": "Bearer key-a-0123456789"})
    # Then she gets the ledger's 503 (no event of the stream), and the conversation Mistral made is deleted
    assert answer.status_code == 503 and answer.json()["code"] == "ledger_unavailable"
    calls = [(r.method, r.path) for r in emulator.requests if r.path.startswith("/v1/conversations")]
    assert [method for method, _ in calls] == ["POST", "DELETE"]
    assert calls[1][1].removeprefix("/v1/conversations/") not in emulator.account.conversations
    assert current().ledger.ids("key-a", "conversation") == []


def test_a_cut_conversation_stream_ends_with_an_error_event_and_keeps_the_reservation(url, emulator, gateway) -> None:
    emulator.script(Fault(stream_cut=True))
    body = {"model": MODEL, "inputs": "this stream will be cut", "stream": True}
    headers = {"Authorization": "Bearer key-b-0123456789"}
    with httpx.stream("POST", f"{url}/v1/conversations", json=body, headers=headers) as response:
        assert response.status_code == 200
        lines = [line for line in response.iter_lines() if line.startswith("data:")]
    last = json.loads(lines[-1][5:])
    assert last["object"] == "error" and "cut off" in last["message"]
    (line,) = wait_for(lambda: streamed_lines(gateway, "/v1/conversations"))
    assert line["stream_ended"] == "cut" and line["caller"] == "key-b"


def test_a_plain_conversation_on_the_streaming_function_is_relayed_whole(clients, emulator) -> None:
    alice, _ = clients
    started = alice.beta.conversations.start(inputs="no stream please", model=MODEL)
    assert started.outputs[0].content.startswith("Emulated answer")
    assert current().ledger.ids("key-a", "conversation") == [started.conversation_id]


@pytest.mark.parametrize("path", ["/v1/conversations", "/v1/agents/completions"])
def test_a_streamed_turn_settles_the_callers_token_budget_from_its_last_event(url, gateway, emulator, path) -> None:
    from gateway_dev.ops import quota as quota_admin

    quota_admin.set_limits("mistral-gateway-QuotaTable", "key-a", {"tokens_per_day": 100_000})
    if path == "/v1/agents/completions":
        created = gateway.request("POST", "/v1/agents", {"model": MODEL, "name": "metered"}, api_key_id="key-a")
        body: dict[str, Any] = {"agent_id": created.json["id"], "messages": [{"role": "user", "content": "count"}]}
    else:
        body = {"model": MODEL, "inputs": "count my streamed tokens please"}
    headers = {"Authorization": "Bearer key-a-0123456789"}
    with httpx.stream("POST", f"{url}{path}", json={**body, "stream": True}, headers=headers) as response:
        assert response.status_code == 200 and response.headers["ratelimit-remaining"]
        events = [json.loads(line[5:]) for line in response.iter_lines() if line.startswith("data: {")]
    usage = events[-1]["usage"]
    (line,) = wait_for(lambda: streamed_lines(gateway, path))
    # Then the budget holds exactly the tokens the last event reported (not the reservation), once the line is out
    day = quota_admin.show("mistral-gateway-QuotaTable", "key-a")["usage"]["day"]
    assert (
        day["tokens"]
        == usage["prompt_tokens"] + usage["completion_tokens"]
        == (line["prompt_tokens"] + line["completion_tokens"])
    )
    # And Bob's budget is untouched
    assert quota_admin.show("mistral-gateway-QuotaTable", "key-b")["usage"]["day"].get("tokens", 0) == 0
