"""Two caller keys against the gateway over HTTP (as `make serve` with GATEWAY_API_KEYS=key-a,key-b), with the
real mistralai and openai SDKs: every account route works for its owner, every cross-caller attempt fails."""

from __future__ import annotations

import io
from typing import Any

import pytest
from mistralai.client import Mistral
from sdk_callers import KEYS, status_of, two_callers

from mistral_gateway.container import current


@pytest.fixture
def clients(keyed_http_gateway: Any) -> tuple[Mistral, Mistral]:
    return two_callers(keyed_http_gateway(KEYS))


def test_files_with_the_mistralai_sdk(clients, emulator) -> None:
    alice, bob = clients
    uploaded = alice.files.upload(file={"file_name": "notes.pdf", "content": b"alice's notes"}, purpose="ocr")
    assert alice.files.retrieve(file_id=uploaded.id).filename == "notes.pdf"
    assert alice.files.download(file_id=uploaded.id).read() == b"alice's notes"
    assert alice.files.get_signed_url(file_id=uploaded.id).url.startswith("https://")
    listed = alice.files.list()
    assert listed.total == 1 and [f.id for f in listed.data] == [uploaded.id]
    assert bob.files.list().total == 0
    before = emulator.calls()
    assert status_of(lambda: bob.files.retrieve(file_id=uploaded.id)) == 404
    assert status_of(lambda: bob.files.delete(file_id=uploaded.id)) == 404
    assert emulator.calls() == before
    assert alice.files.delete(file_id=uploaded.id).deleted is True
    assert current().ledger.ids("key-a", "file") == []


def test_agents_and_conversations_with_the_mistralai_sdk(clients, emulator) -> None:
    alice, bob = clients
    agent = alice.beta.agents.create(model="mistral-small-latest", name="helper", instructions="be kind")
    assert [a.id for a in alice.beta.agents.list()] == [agent.id]
    assert bob.beta.agents.list() == []
    started = alice.beta.conversations.start(agent_id=agent.id, inputs="hello there agent")
    assert started.outputs[0].content.startswith("Emulated answer")
    appended = alice.beta.conversations.append(conversation_id=started.conversation_id, inputs="and again")
    assert appended.conversation_id == started.conversation_id
    history = alice.beta.conversations.get_history(conversation_id=started.conversation_id)
    assert len(history.entries) == 4
    events = list(alice.beta.conversations.start_stream(inputs="stream this answer", model="mistral-small-latest"))
    assert events[0].event == "conversation.response.started" and events[-1].event == "conversation.response.done"
    streamed_id = events[0].data.conversation_id
    assert {c.id for c in alice.beta.conversations.list()} == {started.conversation_id, streamed_id}
    before = emulator.calls()
    assert status_of(lambda: bob.beta.agents.get(agent_id=agent.id)) == 404
    assert status_of(lambda: bob.beta.conversations.start(agent_id=agent.id, inputs="hi")) == 404
    assert status_of(lambda: bob.beta.conversations.get_history(conversation_id=started.conversation_id)) == 404
    assert status_of(lambda: bob.beta.conversations.append(conversation_id=streamed_id, inputs="x")) == 404
    assert bob.beta.conversations.list() == []
    assert emulator.calls() == before


def test_batch_jobs_with_the_mistralai_sdk(clients, emulator) -> None:
    alice, bob = clients
    line = b'{"custom_id": "1", "body": {"messages": [{"role": "user", "content": "hi batch"}]}}\n'
    batch_file = alice.files.upload(file={"file_name": "in.jsonl", "content": line}, purpose="batch")
    refused = status_of(
        lambda: bob.batch.jobs.create(
            input_files=[batch_file.id], endpoint="/v1/chat/completions", model="mistral-small-latest"
        )
    )
    assert refused == 404
    job = alice.batch.jobs.create(
        input_files=[batch_file.id], endpoint="/v1/chat/completions", model="mistral-small-latest"
    )
    emulator.account.batch_seconds, waited = 0, emulator.account.batch_seconds
    try:
        done = alice.batch.jobs.get(job_id=job.id)
    finally:
        emulator.account.batch_seconds = waited
    assert done.status == "SUCCESS" and done.output_file
    assert b"custom_id" in alice.files.download(file_id=done.output_file).read()
    assert status_of(lambda: bob.files.download(file_id=done.output_file)) == 404
    assert alice.batch.jobs.list().total == 1 and bob.batch.jobs.list().total == 0


def test_the_openai_sdk_files_api_sees_only_the_callers_own(keyed_http_gateway, emulator) -> None:
    from openai import NotFoundError, OpenAI

    url = keyed_http_gateway(KEYS)
    alice, bob = (OpenAI(api_key=key, base_url=f"{url}/v1", max_retries=0) for key in KEYS)
    created = alice.files.create(file=("data.jsonl", io.BytesIO(b'{"a": 1}\n')), purpose="batch")
    assert alice.files.retrieve(created.id).id == created.id
    assert alice.files.content(created.id).read() == b'{"a": 1}\n'
    with pytest.raises(NotFoundError):
        bob.files.retrieve(created.id)
    second = alice.files.create(file=("more.jsonl", io.BytesIO(b'{"b": 2}\n')), purpose="batch")
    assert [f.id for f in alice.files.list(limit=1)] == [second.id, created.id]  # pages by OpenAI's cursor
    assert list(bob.files.list()) == []
