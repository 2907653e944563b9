"""Mistral's account routes under AccountRoutes=owned: each caller uses and sees only what it created.

Two (or more) callers, API Gateway events in, the emulator as Mistral's one shared account, the ownership
ledger in moto. Every cross-caller attempt is a 404 with the body of an id that does not exist, and never
reaches Mistral.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from retried_calls import SentTwice

BOUNDARY = "ownershipboundary"


def multipart(filename: str, content: bytes, **fields: str) -> tuple[bytes, dict[str, str]]:
    parts = b"".join(
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    )
    parts += (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode() + content
    return parts + f"\r\n--{BOUNDARY}--\r\n".encode(), {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}


def upload(gateway: Any, caller: str, content: bytes = b"hello", purpose: str = "ocr", name: str = "a.pdf") -> str:
    raw, headers = multipart(name, content, purpose=purpose)
    answer = gateway.request("POST", "/v1/files", raw=raw, headers=headers, api_key_id=caller)
    assert answer.status == 200, answer.body
    return str(answer.json["id"])


def batch_input(*prompts: str) -> bytes:
    lines = [
        {"custom_id": str(i), "body": {"messages": [{"role": "user", "content": prompt}], "max_tokens": 16}}
        for i, prompt in enumerate(prompts)
    ]
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


def upstream_calls(emulator: Any, fragment: str) -> int:
    return sum(1 for request in list(emulator.requests) if fragment in request.path)


# --- files ----------------------------------------------------------------------------------------------


def test_a_file_is_its_uploaders_alone_and_another_callers_id_looks_like_a_missing_one(gateway, emulator) -> None:
    # Given alice uploaded a file
    file_id = upload(gateway, "alice", b"alice's contract")
    # When alice uses it, every route works
    assert gateway.request("GET", f"/v1/files/{file_id}", api_key_id="alice").json["id"] == file_id
    content = gateway.request("GET", f"/v1/files/{file_id}/content", api_key_id="alice")
    assert content.status == 200 and content.body == b"alice's contract"
    assert gateway.request("GET", f"/v1/files/{file_id}/url", api_key_id="alice").json["url"].startswith("https://")
    # When bob tries the same id on every route, and an id that exists nowhere
    emulator.reset()
    answers = [
        gateway.request(method, f"/v1/files/{file_id}{suffix}", api_key_id="bob")
        for method, suffix in (("GET", ""), ("GET", "/content"), ("GET", "/url"), ("DELETE", ""))
    ]
    missing = gateway.request("GET", "/v1/files/00000000-0000-0000-0000-000000000000", api_key_id="bob")
    # Then each is the same 404 as the missing one, and Mistral never heard of them
    assert {a.status for a in answers} == {404} and missing.status == 404
    assert {a.body for a in answers} == {missing.body} and missing.json["object"] == "error"
    assert emulator.calls() == 0
    # And alice's file is still there; alice deletes it and it is gone for her too
    assert gateway.request("DELETE", f"/v1/files/{file_id}", api_key_id="alice").json["deleted"] is True
    assert gateway.request("GET", f"/v1/files/{file_id}", api_key_id="alice").body == missing.body


def test_a_list_holds_only_the_callers_own_with_its_own_total_and_pages(gateway, emulator) -> None:
    # Given alice has 3 files and bob 5 on the same Mistral account
    alice = [upload(gateway, "alice", f"a{i}".encode()) for i in range(3)]
    bob = [upload(gateway, "bob", f"b{i}".encode()) for i in range(5)]
    # When each lists
    mine = gateway.request("GET", "/v1/files", api_key_id="alice").json
    theirs = gateway.request("GET", "/v1/files?page=0&page_size=100", api_key_id="bob").json
    # Then each sees its own, all on the first page, counted over its own
    assert mine["object"] == "list" and mine["total"] == 3 and {f["id"] for f in mine["data"]} == set(alice)
    assert theirs["total"] == 5 and {f["id"] for f in theirs["data"]} == set(bob)
    # And pages are cut from the caller's own, newest first
    first = gateway.request("GET", "/v1/files?page=0&page_size=2", api_key_id="alice").json
    second = gateway.request("GET", "/v1/files?page=1&page_size=2", api_key_id="alice").json
    assert first["total"] == second["total"] == 3
    assert [f["id"] for f in first["data"] + second["data"]] == alice[::-1]
    # And filters apply to the caller's own
    upload(gateway, "alice", b"batch", purpose="batch", name="in.jsonl")
    batch_files = gateway.request("GET", "/v1/files?purpose=batch", api_key_id="alice").json
    assert batch_files["total"] == 1 and batch_files["data"][0]["purpose"] == "batch"


@pytest.mark.parametrize("query", ["page=-1", "page_size=0", "page_size=abc", "page_size=100000"])
def test_a_bad_page_is_a_400(gateway, emulator, query) -> None:
    answer = gateway.request("GET", f"/v1/files?{query}", api_key_id="alice")
    assert answer.status == 400 and answer.json["object"] == "error"


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/v1/files/a b", 400),  # not an id
        ("/v1/files/abc%2Fdef", 400),  # an encoded slash left encoded
        ("/v1/files/..", 400),
        ("/v1/files/a/../../agents", 400),
        ("/v1/FILES", 404),  # case: not a Mistral route
        ("/v1/files/x/y/z", 403),  # no such route under files: refused, never relayed
    ],
)
def test_path_tricks_are_a_4xx_and_never_reach_mistral(gateway, emulator, path, status) -> None:
    answer = gateway.request("GET", path, api_key_id="alice")
    assert answer.status == status and answer.json["object"] == "error"
    assert emulator.calls() == 0


def test_an_id_of_another_case_is_another_id(gateway, emulator) -> None:
    file_id = upload(gateway, "alice")
    assert gateway.request("GET", f"/v1/files/{file_id.upper()}", api_key_id="alice").status == 404


# --- batch jobs ------------------------------------------------------------------------------------------


def test_a_batch_job_its_outputs_and_its_inputs_belong_to_one_caller(gateway, emulator) -> None:
    # Given alice's input file
    input_id = upload(gateway, "alice", batch_input("one", "two"), purpose="batch", name="in.jsonl")
    job = {"input_files": [input_id], "endpoint": "/v1/chat/completions", "model": "mistral-small-latest"}
    # When bob creates a job over alice's file: 404, Mistral never asked
    emulator.reset()
    assert gateway.request("POST", "/v1/batch/jobs", job, api_key_id="bob").status == 404
    assert emulator.calls("/v1/batch/jobs") == 0
    # When alice does, the job is hers
    created = gateway.request("POST", "/v1/batch/jobs", job, api_key_id="alice")
    assert created.status == 200 and created.json["status"] == "QUEUED"
    job_id = created.json["id"]
    emulator.account.batch_seconds, waited = 0, emulator.account.batch_seconds
    try:
        done = gateway.request("GET", f"/v1/batch/jobs/{job_id}", api_key_id="alice").json
    finally:
        emulator.account.batch_seconds = waited
    assert done["status"] == "SUCCESS" and done["succeeded_requests"] == 2
    # Then its output file is alice's: readable by her, a 404 for bob
    output = gateway.request("GET", f"/v1/files/{done['output_file']}/content", api_key_id="alice")
    assert output.status == 200 and len(output.body.splitlines()) == 2
    emulator.reset()
    for method, path in (
        ("GET", f"/v1/batch/jobs/{job_id}"),
        ("POST", f"/v1/batch/jobs/{job_id}/cancel"),
        ("DELETE", f"/v1/batch/jobs/{job_id}"),
        ("GET", f"/v1/files/{done['output_file']}/content"),
    ):
        assert gateway.request(method, path, api_key_id="bob").status == 404, path
    assert emulator.calls() == 0
    listed = gateway.request("GET", "/v1/batch/jobs", api_key_id="alice").json
    assert listed["total"] == 1 and listed["data"][0]["id"] == job_id
    assert gateway.request("GET", "/v1/batch/jobs", api_key_id="bob").json == {"data": [], "object": "list", "total": 0}


# --- agents, conversations -------------------------------------------------------------------------------


def make_agent(gateway: Any, caller: str, **fields: Any) -> dict[str, Any]:
    body = {"model": "mistral-small-latest", "name": f"{caller}'s agent", **fields}
    answer = gateway.request("POST", "/v1/agents", body, api_key_id=caller)
    assert answer.status == 200, answer.body
    return dict(answer.json)


def test_an_agent_its_versions_and_its_use_belong_to_its_creator(gateway, emulator) -> None:
    agent = make_agent(gateway, "alice")
    agent_id = agent["id"]
    updated = gateway.request("PATCH", f"/v1/agents/{agent_id}", {"instructions": "be brief"}, api_key_id="alice")
    assert updated.status == 200 and updated.json["version"] == 1
    versions = gateway.request("GET", f"/v1/agents/{agent_id}/versions", api_key_id="alice")
    assert isinstance(versions.json, list), versions.body
    assert [v["version"] for v in versions.json] == [0, 1]
    talk = {"agent_id": agent_id, "messages": [{"role": "user", "content": "hello agent of mine"}]}
    assert gateway.request("POST", "/v1/agents/completions", talk, api_key_id="alice").status == 200
    # When bob tries alice's agent anywhere: its path routes, completions, a conversation, a batch job
    emulator.reset()
    attempts = [
        gateway.request("GET", f"/v1/agents/{agent_id}", api_key_id="bob"),
        gateway.request("PATCH", f"/v1/agents/{agent_id}", {"name": "mine now"}, api_key_id="bob"),
        gateway.request("DELETE", f"/v1/agents/{agent_id}", api_key_id="bob"),
        gateway.request("GET", f"/v1/agents/{agent_id}/versions/0", api_key_id="bob"),
        gateway.request("POST", "/v1/agents/completions", talk, api_key_id="bob"),
        gateway.request("POST", "/v1/conversations", {"agent_id": agent_id, "inputs": "hi"}, api_key_id="bob"),
    ]
    assert [a.status for a in attempts] == [404] * 6
    assert emulator.calls() == 0
    assert gateway.request("GET", "/v1/agents", api_key_id="bob").json == []
    assert [a["id"] for a in gateway.request("GET", "/v1/agents", api_key_id="alice").json] == [agent_id]


def test_a_conversation_its_entries_and_its_branches_belong_to_its_starter(gateway, emulator) -> None:
    started = gateway.request(
        "POST", "/v1/conversations", {"model": "mistral-small-latest", "inputs": "first question"}, api_key_id="alice"
    )
    assert started.status == 200 and started.json["object"] == "conversation.response"
    conversation_id = started.json["conversation_id"]
    appended = gateway.request(
        "POST", f"/v1/conversations/{conversation_id}", {"inputs": "second question"}, api_key_id="alice"
    )
    assert appended.status == 200
    history = gateway.request("GET", f"/v1/conversations/{conversation_id}/history", api_key_id="alice").json
    assert len(history["entries"]) == 4
    restart = {"from_entry_id": history["entries"][1]["id"], "inputs": "another second question"}
    branch = gateway.request("POST", f"/v1/conversations/{conversation_id}/restart", restart, api_key_id="alice")
    branch_id = branch.json["conversation_id"]
    assert branch.status == 200 and branch_id != conversation_id
    # Then the branch is alice's too, and every one of them is a 404 for bob
    assert gateway.request("GET", f"/v1/conversations/{branch_id}/messages", api_key_id="alice").status == 200
    emulator.reset()
    for method, path, body in (
        ("GET", f"/v1/conversations/{conversation_id}", None),
        ("GET", f"/v1/conversations/{conversation_id}/history", None),
        ("GET", f"/v1/conversations/{branch_id}/messages", None),
        ("POST", f"/v1/conversations/{conversation_id}", {"inputs": "let me in"}),
        ("POST", f"/v1/conversations/{conversation_id}/restart", restart),
        ("DELETE", f"/v1/conversations/{branch_id}", None),
    ):
        assert gateway.request(method, path, body, api_key_id="bob").status == 404, path
    assert emulator.calls() == 0
    listed = gateway.request("GET", "/v1/conversations", api_key_id="alice").json
    assert {c["id"] for c in listed} == {conversation_id, branch_id}
    assert gateway.request("GET", "/v1/conversations", api_key_id="bob").json == []


def test_a_streamed_conversation_is_recorded_for_its_starter(gateway, emulator) -> None:
    body = {"model": "mistral-small-latest", "inputs": "stream it to me", "stream": True}
    streamed = gateway.request("POST", "/v1/conversations", body, api_key_id="alice")
    assert streamed.status == 200 and "conversation.response.done" in streamed.text
    started = next(
        json.loads(line[5:])
        for line in streamed.text.splitlines()
        if line.startswith("data:") and "conversation.response.started" in line
    )
    conversation_id = started["conversation_id"]
    assert gateway.request("GET", f"/v1/conversations/{conversation_id}", api_key_id="alice").status == 200
    assert gateway.request("GET", f"/v1/conversations/{conversation_id}", api_key_id="bob").status == 404


# --- libraries -------------------------------------------------------------------------------------------


def test_a_library_and_its_documents_belong_to_its_creator_and_sharing_is_refused(gateway, emulator) -> None:
    library = gateway.request("POST", "/v1/libraries", {"name": "alice's papers"}, api_key_id="alice")
    assert library.status == 201
    library_id = library.json["id"]
    raw, headers = multipart("paper.txt", b"a short paper about owls")
    document = gateway.request(
        "POST", f"/v1/libraries/{library_id}/documents", raw=raw, headers=headers, api_key_id="alice"
    )
    assert document.status == 201
    document_id = document.json["id"]
    text = gateway.request(
        "GET", f"/v1/libraries/{library_id}/documents/{document_id}/text_content", api_key_id="alice"
    )
    assert text.json == {"text": "a short paper about owls"}
    listed = gateway.request("GET", f"/v1/libraries/{library_id}/documents", api_key_id="alice").json
    assert listed["pagination"]["total_items"] == 1 and listed["data"][0]["id"] == document_id
    assert [item["id"] for item in gateway.request("GET", "/v1/libraries", api_key_id="alice").json["data"]] == [
        library_id
    ]
    # When bob reaches for them, or points his agent's document_library tool at alice's library
    emulator.reset()
    tool = {"type": "document_library", "library_ids": [library_id]}
    attempts = [
        gateway.request("GET", f"/v1/libraries/{library_id}", api_key_id="bob"),
        gateway.request("GET", f"/v1/libraries/{library_id}/documents", api_key_id="bob"),
        gateway.request("GET", f"/v1/libraries/{library_id}/documents/{document_id}", api_key_id="bob"),
        gateway.request("POST", "/v1/agents", {"model": "m", "name": "spy", "tools": [tool]}, api_key_id="bob"),
    ]
    assert [a.status for a in attempts] == [404] * 4
    assert gateway.request("GET", "/v1/libraries", api_key_id="bob").json == {"data": []}
    # And sharing a library outside the gateway is refused to its owner too, with the reason
    shared = gateway.request("PUT", f"/v1/libraries/{library_id}/share", {"org_id": "x"}, api_key_id="alice")
    assert shared.status == 403 and shared.json["code"] == "account_route_refused"
    assert "sharing" in shared.json["message"]
    assert gateway.request("GET", "/v1/connectors", api_key_id="alice").status == 403
    assert emulator.calls() == 0


# --- bodies that name resources --------------------------------------------------------------------------


def test_ocr_by_file_id_and_a_fine_tuned_model_need_the_callers_own(gateway, emulator) -> None:
    file_id = upload(gateway, "alice", b"%PDF scanned")
    ocr = {"model": "mistral-ocr-latest", "document": {"type": "file", "file_id": file_id}}
    assert gateway.request("POST", "/v1/ocr", ocr, api_key_id="alice").status == 200
    training = upload(gateway, "alice", batch_input("teach me"), purpose="fine-tune", name="train.jsonl")
    job = {"model": "open-mistral-7b", "training_files": [{"file_id": training, "weight": 1}]}
    emulator.reset()
    assert gateway.request("POST", "/v1/fine_tuning/jobs", job, api_key_id="bob").status == 404
    assert gateway.request("POST", "/v1/ocr", ocr, api_key_id="bob").status == 404
    assert emulator.calls() == 0
    created = gateway.request("POST", "/v1/fine_tuning/jobs", job, api_key_id="alice").json
    model = created["fine_tuned_model"]
    chat = {"model": model, "messages": [{"role": "user", "content": "hello fine-tuned model"}]}
    assert gateway.chat(chat, api_key_id="alice").status == 200
    emulator.reset()
    for answer in (
        gateway.chat(chat, api_key_id="bob"),
        gateway.request("POST", "/v1/embeddings", {"model": model, "input": "x"}, api_key_id="bob"),
        gateway.request("POST", "/v1/classifications", {"model": model, "input": "x"}, api_key_id="bob"),
        gateway.request("DELETE", f"/v1/models/{model}", api_key_id="bob"),
    ):
        assert answer.status == 404 and answer.json["object"] == "error"
    assert emulator.calls() == 0


# --- the ledger failing ----------------------------------------------------------------------------------


def test_a_ledger_that_cannot_record_undoes_the_create_and_answers_503(gateway, emulator, monkeypatch) -> None:
    from botocore.exceptions import ClientError

    from mistral_gateway.container import current

    client = current().ledger.client
    throttled = ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "PutItem")
    monkeypatch.setattr(client, "put_item", lambda **_: (_ for _ in ()).throw(throttled))
    raw, headers = multipart("a.pdf", b"orphan?", purpose="ocr")
    answer = gateway.request("POST", "/v1/files", raw=raw, headers=headers, api_key_id="alice")
    assert answer.status == 503 and answer.json["code"] == "ledger_unavailable"
    assert answer.header("Retry-After") == "1"
    # Then the file Mistral made was deleted again: no orphan on the account
    calls = [(r.method, r.path) for r in emulator.requests if r.path.startswith("/v1/files")]
    assert [method for method, _ in calls] == ["POST", "DELETE"]
    assert calls[1][1].removeprefix("/v1/files/") not in emulator.account.files


def test_a_missing_ledger_fails_closed(gateway, emulator) -> None:
    file_id = upload(gateway, "alice")
    import boto3

    from mistral_gateway.container import current

    boto3.client("dynamodb").delete_table(TableName=current().ledger.table_name)  # the operator's doing
    emulator.reset()
    for method, path in (("GET", f"/v1/files/{file_id}"), ("GET", "/v1/files")):
        answer = gateway.request(method, path, api_key_id="alice")
        assert answer.status == 503 and answer.json["code"] == "ledger_unavailable"
    agent = gateway.request("POST", "/v1/agents", {"model": "m", "name": "n"}, api_key_id="alice")
    assert agent.status == 503
    assert [r.method for r in emulator.requests] == ["POST", "DELETE"]  # the agent, made and unmade
    assert emulator.requests[1].path.removeprefix("/v1/agents/") not in emulator.account.agents


# --- concurrency -----------------------------------------------------------------------------------------


def test_two_callers_creating_and_listing_at_once_each_see_exactly_their_own(gateway, emulator) -> None:
    made: dict[str, list[str]] = {"alice": [], "bob": []}
    seen: dict[str, list[set[str]]] = {"alice": [], "bob": []}
    errors: list[BaseException] = []

    def work(caller: str) -> None:
        try:
            for i in range(4):
                made[caller].append(upload(gateway, caller, f"{caller}-{i}-{time.time()}".encode()))
                listed = gateway.request("GET", "/v1/files", api_key_id=caller).json
                seen[caller].append({item["id"] for item in listed["data"]})
        except BaseException as error:  # reported by the main thread
            errors.append(error)

    threads = [threading.Thread(target=work, args=(caller,)) for caller in ("alice", "bob")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    for caller, other in (("alice", "bob"), ("bob", "alice")):
        assert all(listing <= set(made[caller]) for listing in seen[caller])  # never another's
        assert seen[caller][-1] == set(made[caller])
        assert not seen[caller][-1] & set(made[other])


# --- metering ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_conversation_turns_are_metered_like_chat(gateway, emulator, stream) -> None:
    from gateway_dev.ops import quota as quota_admin

    quota_admin.set_limits("mistral-gateway-QuotaTable", "alice", {"tokens_per_day": 100_000})
    body = {"model": "mistral-small-latest", "inputs": "count my tokens please", "stream": stream}
    turn = gateway.request("POST", "/v1/conversations", body, api_key_id="alice")
    assert turn.status == 200
    prompt, completion = int(turn.header("X-Usage-Prompt-Tokens")), int(turn.header("X-Usage-Completion-Tokens"))
    assert prompt > 0 and completion > 0 and turn.header("RateLimit-Remaining") is not None
    day = quota_admin.show("mistral-gateway-QuotaTable", "alice")["usage"]["day"]
    assert day["tokens"] == prompt + completion


def test_a_batch_job_is_settled_once_at_half_price_against_its_owners_budget(gateway, emulator) -> None:
    from gateway_dev.ops import quota as quota_admin

    quota_admin.set_limits("mistral-gateway-QuotaTable", "alice", {"tokens_per_day": 100_000})
    input_id = upload(gateway, "alice", batch_input("one", "two", "three"), purpose="batch", name="in.jsonl")
    job = {"input_files": [input_id], "endpoint": "/v1/chat/completions", "model": "mistral-small-latest"}
    job_id = gateway.request("POST", "/v1/batch/jobs", job, api_key_id="alice").json["id"]
    before = quota_admin.show("mistral-gateway-QuotaTable", "alice")["usage"]["day"]["tokens"]
    emulator.account.batch_seconds, waited = 0, emulator.account.batch_seconds
    try:
        first = gateway.request("GET", f"/v1/batch/jobs/{job_id}", api_key_id="alice")
        again = gateway.request("GET", f"/v1/batch/jobs/{job_id}", api_key_id="alice")
    finally:
        emulator.account.batch_seconds = waited
    output = gateway.request("GET", f"/v1/files/{first.json['output_file']}/content", api_key_id="alice").body
    answers = [json.loads(line)["response"]["body"]["usage"] for line in output.splitlines()]
    tokens = sum(u["prompt_tokens"] + u["completion_tokens"] for u in answers)
    prompt = sum(u["prompt_tokens"] for u in answers)
    # Then the first read of the finished job charges its tokens, once, and prices them at half
    assert int(first.header("X-Usage-Prompt-Tokens")) == prompt
    from mistral_gateway.container import current

    full = current().prices.cost_usd(
        "mistral-small-latest", {"prompt_tokens": prompt, "completion_tokens": tokens - prompt}
    )
    assert full is not None and float(first.header("X-Estimated-Cost-USD")) == pytest.approx(full / 2)
    assert again.header("X-Usage-Prompt-Tokens") is None
    after = quota_admin.show("mistral-gateway-QuotaTable", "alice")["usage"]["day"]["tokens"]
    assert after - before == tokens


def test_a_once_only_marker_sent_again_after_it_landed_still_knows_it_was_first(gateway) -> None:
    from mistral_gateway.container import current
    from mistral_gateway.stores.ledger import Ledger

    # Given the ledger's client, whose first marker write lands, loses its answer and is sent again
    ledger = current().ledger
    lossy = SentTwice(ledger.client, "put_item", lambda call: call["Item"]["pk"]["S"].startswith("settled#"))
    retried = Ledger(ledger.table_name, lossy)
    # Then the call that wrote it was first, and any later one (the same caller's too) is not
    assert retried.claim("alice", "settled", "batch_job#b-1") is True
    assert lossy.repeated == 1
    assert retried.claim("alice", "settled", "batch_job#b-1") is False
    assert ledger.claim("bob", "settled", "batch_job#b-1") is False


def test_a_caller_whose_budget_is_spent_cannot_create_a_batch_job(gateway, emulator, reconfigure) -> None:
    from gateway_dev.ops import quota as quota_admin

    input_id = upload(gateway, "alice", batch_input("one"), purpose="batch", name="in.jsonl")
    quota_admin.set_limits("mistral-gateway-QuotaTable", "alice", {"tokens_per_day": 10})
    reconfigure()  # a container that reads alice's new limits
    job = {"input_files": [input_id], "endpoint": "/v1/chat/completions", "model": "mistral-small-latest"}
    refused = gateway.request("POST", "/v1/batch/jobs", job, api_key_id="alice")
    assert refused.status == 429 and refused.json["code"] == "quota_exceeded"
    assert emulator.calls("/v1/batch/jobs") == 0
