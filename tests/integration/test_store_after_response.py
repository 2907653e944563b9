"""A buffered miss is answered before its answer is stored (after_response.py), through the API function.

The local runner, like Lambda with the post-response extension, returns the handler's response and then runs
the store; the function's instance stays busy until it has. Each test holds the store back (the cache's own
PutItem waits for the test) to see the order of things, then lets it land.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from gateway_dev.cloud.apigw import proxy_event, proxy_result

CHAT = "/v1/chat/completions"
TABLE = "mistral-gateway-CacheTable"


@pytest.fixture
def held_stores(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """Every answer store waits until the test sets the event (at most 10 s), then runs as it would have."""
    from mistral_gateway.policies.cache import ResponseCache

    release = threading.Event()
    release.threads = []  # type: ignore[attr-defined]  # the name of the thread each store ran on
    put = ResponseCache.put

    def held(self: ResponseCache, *args: Any, **kwargs: Any) -> bool:
        release.threads.append(threading.current_thread().name)  # type: ignore[attr-defined]
        release.wait(10)
        return put(self, *args, **kwargs)

    monkeypatch.setattr(ResponseCache, "put", held)
    yield release
    release.set()  # a test that failed early must not leave a store hanging


def invoke(gateway: Any, body: dict[str, Any], caller: str) -> tuple[int, str | None, dict[str, Any]]:
    """One invocation, returning as soon as the handler's response does (no waiting for its store)."""
    import json

    event = proxy_event("POST", CHAT, resource=CHAT, body=json.dumps(body), api_key_id=caller)
    status, headers, raw = proxy_result(gateway.function.invoke(event))
    return status, dict(headers).get("X-Cache"), json.loads(raw)


def cached_items() -> list[dict[str, Any]]:
    """Every item of the cache table (answers and leases), read with a client of the test's own."""
    import boto3

    client = boto3.session.Session().client("dynamodb")
    return client.scan(TableName=TABLE, ConsistentRead=True)["Items"]


def stored(items: list[dict[str, Any]]) -> int:
    return sum(1 for item in items if "body" in item)


def leased(items: list[dict[str, Any]]) -> int:
    return sum(1 for item in items if float(item.get("lease_until", {}).get("N", 0)) > time.time())


def call_app(gateway: Any, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> int:
    """One request straight to the streaming function's ASGI app, as the Web Adapter's uvicorn passes it: the
    status answered."""
    import asyncio

    from gateway_dev.runner.asgi import load_asgi_app

    app = load_asgi_app(gateway.template, "StreamFunction")
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    raw_headers = [(name.lower().encode(), value.encode()) for name, value in headers.items()]
    scope = {"type": "http", "method": method, "path": path, "raw_path": path.encode(), "headers": raw_headers}
    asyncio.run(app({**scope, "query_string": b""}, receive, send))
    return int(sent[0]["status"])


def chat_request(text: str) -> bytes:
    import json

    return json.dumps({"model": "mistral-small-latest", "messages": [{"role": "user", "content": text}]}).encode()


def test_a_miss_is_answered_before_its_store_lands_and_its_repeat_is_the_stored_hit(
    gateway, emulator, chat_body, held_stores
):
    # Given a new question, and stores that wait for the test
    body = chat_body("answered before it is stored")
    # When alice asks it
    status, cache, answer = invoke(gateway, body, "key-alice")
    # Then she has Mistral's answer while the store has not landed: the lease still stands in the table
    assert (status, cache) == (200, "MISS") and answer["choices"][0]["message"]["content"]
    items = cached_items()
    assert (stored(items), leased(items)) == (0, 1)
    # When the store lands
    held_stores.set()
    gateway.settle()
    # Then the table holds her answer, and her repeat is a hit without a second Mistral call
    items = cached_items()
    assert (stored(items), leased(items)) == (1, 0)  # storing it ended the lease
    assert gateway.chat(body, api_key_id="key-alice").header("X-Cache") == "HIT"
    assert emulator.calls(CHAT) == 1


def test_an_identical_request_during_the_store_waits_for_it_not_for_mistral(
    gateway, emulator, chat_body, held_stores, monkeypatch
):
    from mistral_gateway.policies.singleflight import Flight

    # Given alice's miss answered, its store held back
    body = chat_body("asked again while the first answer is being stored")
    assert invoke(gateway, body, "key-alice")[:2] == (200, "MISS")
    waiting = threading.Event()
    wait_for_leader = Flight._wait_for_leader

    def waits(self: Flight) -> Any:
        waiting.set()
        return wait_for_leader(self)

    monkeypatch.setattr(Flight, "_wait_for_leader", waits)
    # When she asks again before the store lands (from another thread: the first is still storing)
    repeat: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: repeat.update(result=invoke(gateway, body, "key-alice")))
    thread.start()
    assert waiting.wait(30)  # the repeat found the lease and waits on it
    held_stores.set()
    thread.join(30)
    assert not thread.is_alive()
    # Then the repeat waited on the first one's lease and is her stored answer; Mistral was asked once
    assert repeat["result"][:2] == (200, "HIT")
    assert any(record.get("single_flight") == "waited" for record in gateway.log_records())
    assert emulator.calls(CHAT) == 1


def test_another_callers_identical_request_is_never_served_from_the_pending_store(
    gateway, emulator, chat_body, held_stores
):
    # Given alice's answer still being stored
    body = chat_body("two callers, one pending store")
    assert invoke(gateway, body, "key-alice")[:2] == (200, "MISS")
    # When bob asks the same thing before it lands
    status, cache, _ = invoke(gateway, body, "key-bob")
    held_stores.set()
    gateway.settle()
    # Then his is a miss of his own: the pending store (and its lease) is alice's scope alone, not waited on
    assert (status, cache) == (200, "MISS")
    assert emulator.calls(CHAT) == 2
    assert stored(cached_items()) == 2
    assert not any(record.get("single_flight") for record in gateway.log_records())


def test_a_store_that_fails_after_the_response_gives_the_lease_back(gateway, emulator, chat_body, monkeypatch):
    # Given a table that refuses the store (a PutItem failing: the cache fails open)
    from mistral_gateway.policies.cache import ResponseCache

    monkeypatch.setattr(ResponseCache, "put", lambda *_args, **_kwargs: False)
    body = chat_body("a store that never lands")
    # When alice's miss is answered and its store fails after the response
    assert invoke(gateway, body, "key-alice")[:2] == (200, "MISS")
    gateway.settle()
    # Then no lease is left for identical requests to wait on: the next one asks Mistral at once
    assert leased(cached_items()) == 0
    assert gateway.chat(body, api_key_id="key-alice").header("X-Cache") == "MISS"
    assert emulator.calls(CHAT) == 2


def test_with_store_after_response_off_the_answer_is_stored_before_the_response(
    gateway, emulator, chat_body, monkeypatch, reconfigure, held_stores
):
    # Given STORE_AFTER_RESPONSE=false (and stores that go through at once, recording the thread they ran on)
    monkeypatch.setenv("STORE_AFTER_RESPONSE", "false")
    reconfigure()
    held_stores.set()
    body = chat_body("stored before it is answered")
    # When alice's miss is answered
    assert invoke(gateway, body, "key-alice")[:2] == (200, "MISS")
    # Then the table already holds it, stored by the invocation itself before it returned
    assert held_stores.threads == [threading.current_thread().name]
    assert stored(cached_items()) == 1


def test_a_batch_with_identical_items_asks_mistral_once_without_waiting_for_its_own_response(
    gateway, emulator, chat_body
):
    import json

    # Given a batch whose two items are the same question (one waits on the other's lease)
    item = chat_body("the same question twice in one batch")
    event = proxy_event(
        "POST",
        "/v1/batch/chat/completions",
        resource="/v1/batch/chat/completions",
        body=json.dumps({"requests": [item, item]}),
        api_key_id="key-alice",
    )
    # When the batch is answered
    status, _, raw = proxy_result(gateway.function.invoke(event))
    # Then one item asked Mistral and the other got its stored answer: a batch's items are stored as they
    # finish, not after the batch answers (which would keep the waiting item waiting out its whole wait)
    assert status == 200 and sorted(result["cache"] for result in json.loads(raw)["data"]) == ["HIT", "MISS"]
    assert emulator.calls(CHAT) == 1


def test_in_lambda_the_api_handler_hands_its_store_to_the_post_response_extension(
    gateway, emulator, chat_body, runtime_api, held_stores, template
):
    import json

    from gateway_dev.runner.functions import LambdaContext, handler_module
    from mistral_gateway.platform import after_response

    # Given the API function's own handler in a container whose post-response extension is registered
    api, address = runtime_api
    assert after_response.start_extension({"AWS_LAMBDA_RUNTIME_API": address}) is not None
    assert api.wait_asked(1)
    handler = handler_module(template, "ApiFunction").lambda_handler
    body = chat_body("stored by the extension")
    event = proxy_event("POST", CHAT, resource=CHAT, body=json.dumps(body), api_key_id="key-alice")
    # When Lambda sends an invocation and the handler returns its answer
    api.invoke("request-1")
    status, headers, _ = proxy_result(handler(event, LambdaContext("ApiFunction", aws_request_id="request-1")))
    # Then the answer is out, its store pending on the extension, which has not asked for the next event
    assert (status, dict(headers)["X-Cache"]) == (200, "MISS")
    assert (stored(cached_items()), leased(cached_items())) == (0, 1) and api.asked == 1
    # When the store lands, the extension asks for the next event
    held_stores.set()
    assert api.wait_asked(2) and held_stores.threads == [after_response.EXTENSION_NAME]
    assert (stored(cached_items()), leased(cached_items())) == (1, 0)


def test_in_lambda_the_streaming_app_hands_its_store_to_the_extension_and_a_readiness_check_nothing(
    http_gateway, gateway, emulator, runtime_api, held_stores
):
    import httpx2

    from mistral_gateway.platform import after_response

    # Given the streaming app (which serves chat over HTTP) with the post-response extension registered
    api, address = runtime_api
    extension = after_response.start_extension({"AWS_LAMBDA_RUNTIME_API": address})
    assert extension is not None and api.wait_asked(1)
    # When an invocation arrives (the id the Web Adapter hands the app is the one the extension waits for)
    api.invoke("")
    answer = httpx2.post(
        f"{http_gateway}{CHAT}",
        json={"model": "mistral-small-latest", "messages": [{"role": "user", "content": "streaming app store"}]},
        timeout=20,
    )
    # Then the plain answer is out with its store pending on the extension
    assert answer.status_code == 200 and answer.headers["x-cache"] == "MISS"
    assert (stored(cached_items()), leased(cached_items())) == (0, 1) and api.asked == 1
    held_stores.set()
    assert api.wait_asked(2) and stored(cached_items()) == 1
    assert held_stores.threads == [after_response.EXTENSION_NAME]  # not a thread the app started itself
    # And the app's readiness check hands the extension nothing to wait for
    assert call_app(gateway, "GET", "/ready", {}) == 200 and extension._handed.qsize() == 0


def test_outside_lambda_a_caller_with_its_answer_cannot_settle_before_the_streaming_apps_store(
    http_gateway, gateway, emulator, monkeypatch
):
    import httpx2

    from mistral_gateway.platform import after_response

    # Given the streaming app (which serves chat over HTTP) holding back the hand-over of its work, as if the
    # server's thread had not yet reached it after writing the response
    may_hand_over = threading.Event()
    after_sent = after_response.after_sent

    def held(request_id: str, work: list[Any]) -> None:
        may_hand_over.wait(10)
        after_sent(request_id, work)

    monkeypatch.setattr(after_response, "after_sent", held)
    try:
        # When a plain miss is answered
        answer = httpx2.post(
            f"{http_gateway}{CHAT}",
            json={"model": "mistral-small-latest", "messages": [{"role": "user", "content": "counted at once"}]},
            timeout=20,
        )
        assert answer.status_code == 200 and answer.headers["x-cache"] == "MISS"
        # Then settling says its store is still to come
        assert after_response.settle(timeout=0.2) is False
    finally:
        may_hand_over.set()
    # And once handed over it lands, and the repeat is a hit
    assert after_response.settle() and (stored(cached_items()), leased(cached_items())) == (1, 0)
    repeat = httpx2.post(
        f"{http_gateway}{CHAT}",
        json={"model": "mistral-small-latest", "messages": [{"role": "user", "content": "counted at once"}]},
        timeout=20,
    )
    assert repeat.headers["x-cache"] == "HIT" and emulator.calls(CHAT) == 1


def test_a_malformed_lambda_context_header_neither_fails_the_request_nor_holds_settle(gateway, emulator):
    from gateway_dev.runner.asgi import adapter_headers
    from mistral_gateway.platform import after_response

    # Given the streaming app handed a Lambda context whose fields are not what the Web Adapter writes
    headers = {**adapter_headers("POST", CHAT, None), "x-amzn-lambda-context": '{"env_config": 1, "deadline": "x"}'}
    # When a plain miss arrives with it
    status = call_app(gateway, "POST", CHAT, {**headers, "content-type": "application/json"}, chat_request("odd"))
    # Then it is answered, and its store lands
    assert status == 200
    assert after_response.settle() and stored(cached_items()) == 1


def test_the_streaming_app_hands_its_work_over_under_the_web_adapters_request_id(gateway, emulator, monkeypatch):
    import json

    from gateway_dev.runner.asgi import adapter_headers
    from mistral_gateway.platform import after_response

    # Given the Web Adapter's Lambda context naming the invocation "request-7"
    handed: list[str] = []
    after_sent = after_response.after_sent

    def recorded(request_id: str, work: list[Any]) -> None:
        handed.append(request_id)
        after_sent(request_id, work)

    monkeypatch.setattr(after_response, "after_sent", recorded)
    headers = adapter_headers("POST", CHAT, None)
    context = {**json.loads(headers["x-amzn-lambda-context"]), "request_id": "request-7"}
    headers = {**headers, "x-amzn-lambda-context": json.dumps(context), "content-type": "application/json"}
    # When a plain miss arrives
    assert call_app(gateway, "POST", CHAT, headers, chat_request("which invocation")) == 200
    # Then its work is handed over under that id: the one the extension waits for
    assert handed == ["request-7"]
    assert after_response.settle() and stored(cached_items()) == 1


def test_over_http_the_sdks_get_their_answers_before_the_stores_and_each_caller_its_own_hit(
    keyed_http_gateway, gateway, emulator, held_stores
):
    from mistralai.client import Mistral
    from openai import OpenAI

    # Given the API served over HTTP with two caller keys, and stores that wait for the test
    url = keyed_http_gateway({"alice-caller-key-0001": "alice", "bob-caller-key-00002": "bob"})
    alice = Mistral(api_key="alice-caller-key-0001", server_url=url)
    bob = OpenAI(api_key="bob-caller-key-00002", base_url=f"{url}/v1", max_retries=0)
    question = [{"role": "user", "content": "asked over HTTP by two callers"}]
    # When each asks the same new question
    alices = alice.chat.complete(model="mistral-small-latest", messages=question)
    bobs = bob.chat.completions.with_raw_response.create(model="mistral-small-latest", messages=question)
    # Then both have Mistral's answer while neither store has landed
    assert alices.choices[0].message.content and bobs.headers["x-cache"] == "MISS"
    assert (stored(cached_items()), leased(cached_items())) == (0, 2)
    # When the stores land, each caller's repeat is a hit of its own; Mistral was asked once per caller
    held_stores.set()
    gateway.settle()
    again = bob.chat.completions.with_raw_response.create(model="mistral-small-latest", messages=question)
    assert again.headers["x-cache"] == "HIT" and again.parse().choices[0].message.content
    assert alice.chat.complete(model="mistral-small-latest", messages=question).choices[0].message.content
    assert emulator.calls(CHAT) == 2 and stored(cached_items()) == 2
