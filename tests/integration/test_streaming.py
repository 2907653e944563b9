"""Streamed chat and FIM through the streaming app over HTTP, as `make serve` and the Web Adapter run it.

The emulator paces its streams or holds them at a gate (before its third event) until the test opens it: a
client that has events in hand while the gate is shut proves they were forwarded before Mistral finished,
with no timing in the assertion.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest

from gateway_dev.emulator.server import Fault
from gateway_dev.ops import quota as quota_admin

KEY = "stream-test-caller-key"
CALLER = "key-id-streamer"
CHAT = "/v1/chat/completions"
QUOTA_TABLE = "mistral-gateway-QuotaTable"


@pytest.fixture
def url(gateway: Any, template: Any) -> Iterator[str]:
    """The local API with a caller key, as `make serve` serves it (the gateway fixture resets state, logs)."""
    from gateway_dev.runner.asgi import BackgroundServer, LocalGateway
    from gateway_dev.runner.bridge import ApiBridge

    server = BackgroundServer(LocalGateway(ApiBridge(template, api_keys={KEY: CALLER})))
    yield server.url
    server.stop()


@pytest.fixture
def client(url: str) -> Iterator[httpx2.Client]:
    with httpx2.Client(base_url=url, headers={"Authorization": f"Bearer {KEY}"}, timeout=20) as http:
        yield http


def body(text: str, **fields: Any) -> dict[str, Any]:
    return {"model": "mistral-small-latest", "messages": [{"role": "user", "content": text}], **fields}


def streamed(client: httpx2.Client, text: str, headers: dict[str, str] | None = None, **fields: Any) -> Any:
    return client.stream("POST", CHAT, json=body(text, stream=True, **fields), headers=headers)


def read_all(client: httpx2.Client, text: str, **kwargs: Any) -> tuple[httpx2.Response, bytes]:
    with streamed(client, text, **kwargs) as response:
        return response, response.read()


def data_events(raw: bytes) -> list[str]:
    return [line[6:] for line in raw.decode().split("\n") if line.startswith("data: ")]


def served_lines(gateway: Any) -> list[dict[str, Any]]:
    return [record for record in gateway.log_records() if record.get("message") == "request served"]


def wait_for(condition: Any) -> None:
    deadline = threading.Event()
    for _ in range(500):
        if condition():
            return
        deadline.wait(0.02)
    raise AssertionError("condition never became true")


# --- incremental forwarding --------------------------------------------------------------------------------


def test_events_reach_the_caller_while_mistral_is_still_writing(client, emulator) -> None:
    # Given Mistral holding its stream after two events
    gate = threading.Event()
    emulator.script(Fault(gate=gate))
    with streamed(client, "Hello incremental world") as response:
        lines = response.iter_lines()
        # When the caller reads, Then the first events are there while Mistral has not finished
        first = [next(lines) for _ in range(3)]
        assert response.status_code == 200 and response.headers["x-cache"] == "MISS"
        assert first[0].startswith("data: ") and '"role": "assistant"' in first[0]
        assert not gate.is_set()
        gate.set()
        rest = list(lines)
    assert rest[-2:] == ["data: [DONE]", ""]


def test_a_stream_longer_than_the_request_deadline_completes(client, emulator, monkeypatch, reconfigure) -> None:

    # Given the buffered deadline at 1 s and an answer that takes about 2 s to write
    monkeypatch.setenv("REQUEST_DEADLINE_MS", "1000")
    reconfigure()
    emulator.script(Fault(chunk_delay=0.2))
    response, raw = read_all(client, "a long answer, written slowly")
    # Then it completes: streams are bounded by the stream cap, not the 25 s (here 1 s) request deadline
    assert response.status_code == 200 and data_events(raw)[-1] == "[DONE]"
    # And so does a plain answer on the same route that takes longer than that deadline
    emulator.script(Fault(delay=1.5))
    plain = client.post(CHAT, json=body("a slow plain answer"))
    assert plain.status_code == 200 and plain.json()["object"] == "chat.completion"


def test_identical_concurrent_streams_do_not_wait_for_each_other(client, emulator) -> None:
    # Given one stream held by Mistral mid-answer
    gate = threading.Event()
    emulator.script(Fault(gate=gate))
    with streamed(client, "the same question at once") as first:
        lines = first.iter_lines()
        next(lines)
        # When an identical stream starts, Then it gets its events without waiting for the first to end
        _, raw = read_all(client, "the same question at once")
        assert data_events(raw)[-1] == "[DONE]" and not gate.is_set()
        gate.set()
        assert list(lines)[-2] == "data: [DONE]"
    assert emulator.calls(CHAT) == 2  # documented: streams never wait on single-flight


# --- the cache -------------------------------------------------------------------------------------------------


def test_a_cached_stream_replays_the_original_events(client, emulator) -> None:
    miss, original = read_all(client, "replay me exactly")
    hit, replay = read_all(client, "replay me exactly")
    assert miss.headers["x-cache"] == "MISS" and hit.headers["x-cache"] == "HIT"
    assert replay == original and len(data_events(replay)) > 5  # every event, byte for byte
    assert emulator.calls(CHAT) == 1


def test_one_entry_serves_plain_and_streamed_requests_both_ways(client, emulator) -> None:
    # A stream first: the plain request gets the assembled answer
    _, raw = read_all(client, "stream first")
    plain = client.post(CHAT, json=body("stream first"))
    assert plain.headers["x-cache"] == "HIT" and plain.json()["object"] == "chat.completion"
    streamed_text = "".join(
        json.loads(event)["choices"][0]["delta"].get("content") or "" for event in data_events(raw)[:-1]
    )
    assert plain.json()["choices"][0]["message"]["content"] == streamed_text
    # A plain answer first: the stream replays it as events. The plain answer is stored after its response;
    # a stream waits on no lease, so it is asked once the store has landed (a client's next request over the
    # internet comes later than a PutItem takes; here, on loopback, it could come sooner).
    from mistral_gateway.platform import after_response

    answer = client.post(CHAT, json=body("plain first")).json()
    assert after_response.settle()
    hit, replay = read_all(client, "plain first")
    assert hit.headers["x-cache"] == "HIT" and data_events(replay)[-1] == "[DONE]"
    replayed = "".join(json.loads(e)["choices"][0]["delta"].get("content") or "" for e in data_events(replay)[:-1])
    assert replayed == answer["choices"][0]["message"]["content"]
    assert emulator.calls(CHAT) == 2


def test_an_sse_librarys_no_store_does_not_switch_the_cache_off(client, emulator) -> None:
    sse_defaults = {"Accept": "text/event-stream", "Cache-Control": "no-store"}  # what httpx-sse always sends
    read_all(client, "langchain style", headers=sse_defaults)
    hit, _ = read_all(client, "langchain style", headers=sse_defaults)
    assert hit.headers["x-cache"] == "HIT"
    # The gateway's own header is unambiguous: no-store means not stored, whatever else is sent
    skipped, _ = read_all(client, "really skip", headers={"X-Gateway-Cache-Control": "no-store"})
    again, _ = read_all(client, "really skip")
    assert skipped.headers["x-cache"] == "BYPASS" and again.headers["x-cache"] == "MISS"


# --- streams that do not complete ----------------------------------------------------------------------------


def test_a_cut_stream_ends_with_an_error_event_and_is_not_cached(client, emulator, gateway) -> None:
    emulator.script(Fault(stream_cut=True))
    response, raw = read_all(client, "cut me off")
    events = data_events(raw)
    assert response.status_code == 200 and "[DONE]" not in events
    error = json.loads(events[-1])
    assert error["error"]["type"] == "upstream_error" and "incomplete" in error["message"]
    again, _ = read_all(client, "cut me off")
    assert again.headers["x-cache"] == "MISS" and emulator.calls(CHAT) == 2
    assert served_lines(gateway)[0]["stream_ended"] == "cut" and served_lines(gateway)[0]["stored"] is False


def test_an_error_from_mistral_mid_stream_is_forwarded_and_never_cached(client, emulator) -> None:
    emulator.script(Fault(stream_error=True))
    _, raw = read_all(client, "fail half way")
    events = [json.loads(event) for event in data_events(raw)]
    assert "[DONE]" not in data_events(raw)
    assert events[2]["message"] == "Internal server error"  # Mistral's own event, as it sent it
    assert "error" in events[-1]
    again, _ = read_all(client, "fail half way")
    assert again.headers["x-cache"] == "MISS"


def test_a_silent_mistral_is_kept_alive_then_timed_out(client, emulator, monkeypatch, reconfigure) -> None:

    monkeypatch.setenv("STREAM_KEEPALIVE_MS", "100")
    monkeypatch.setenv("STREAM_IDLE_TIMEOUT_MS", "5000")
    reconfigure()
    # A pause shorter than the idle timeout: SSE comments keep the connection busy, the answer completes
    emulator.script(Fault(stall=0.6))
    _, raw = read_all(client, "pause, then go on")
    assert b": keep-alive\n\n" in raw and data_events(raw)[-1] == "[DONE]"
    # A pause longer than the idle timeout ends the stream with an error event, nothing stored
    monkeypatch.setenv("STREAM_IDLE_TIMEOUT_MS", "1000")
    reconfigure()
    emulator.script(Fault(stall=3.0))
    _, raw = read_all(client, "silence")
    last = json.loads(data_events(raw)[-1])
    assert last["error"]["type"] == "upstream_timeout" and "[DONE]" not in data_events(raw)
    assert read_all(client, "silence")[0].headers["x-cache"] == "MISS"


def test_a_caller_who_hangs_up_leaves_nothing_in_the_cache(client, emulator, gateway, monkeypatch, reconfigure) -> None:

    monkeypatch.setenv("STREAM_KEEPALIVE_MS", "100")  # the next write notices the caller is gone
    reconfigure()
    gate = threading.Event()
    emulator.script(Fault(gate=gate))
    with streamed(client, "I will hang up") as response:
        next(response.iter_lines())
    # The caller is gone before Mistral finished: the gateway ends the upstream stream and stores nothing
    wait_for(lambda: served_lines(gateway))
    gate.set()
    assert served_lines(gateway)[0]["stream_ended"] == "hung_up" and served_lines(gateway)[0]["stored"] is False
    again, raw = read_all(client, "I will hang up")
    assert again.headers["x-cache"] == "MISS" and data_events(raw)[-1] == "[DONE]"


def test_errors_before_the_first_byte_keep_their_status_and_json(client, emulator) -> None:
    emulator.script(Fault(status=400))
    refused, raw = read_all(client, "rejected by Mistral")
    assert refused.status_code == 400 and json.loads(raw)["object"] == "error"
    emulator.script(*[Fault(status=503)] * 3)
    failed, raw = read_all(client, "Mistral is down")
    assert failed.status_code == 502 and json.loads(raw)["type"] == "upstream_error"
    invalid, raw = read_all(client, "bad", temperature="hot")
    assert invalid.status_code == 422 and "temperature" in json.loads(raw)["message"]


# --- budgets and observability ------------------------------------------------------------------------------


def test_a_stream_settles_the_budget_to_what_it_used(client, emulator, gateway) -> None:
    quota_admin.set_limits(QUOTA_TABLE, CALLER, {"tokens_per_day": 100_000})
    response, raw = read_all(client, "count my streamed tokens", max_tokens=2_000)
    usage = json.loads(data_events(raw)[-2])["usage"]
    assert response.headers["ratelimit-limit"] == "100000"
    day = quota_admin.show(QUOTA_TABLE, CALLER)["usage"]["day"]
    assert day == {"requests": 1, "tokens": usage["prompt_tokens"] + usage["completion_tokens"]}


def test_a_cut_stream_keeps_its_reservation_not_less(client, emulator) -> None:
    quota_admin.set_limits(QUOTA_TABLE, CALLER, {"tokens_per_day": 100_000})
    emulator.script(Fault(stream_cut=True))
    read_all(client, "cut, usage unknown", max_tokens=300)
    day = quota_admin.show(QUOTA_TABLE, CALLER)["usage"]["day"]
    assert day["requests"] == 1 and day["tokens"] >= 300  # Mistral's bill is unknown: never under-count


def test_the_served_line_and_metrics_come_when_the_stream_ends(client, emulator, gateway, capsys) -> None:
    from conftest import sum_emf_metrics

    read_all(client, "observe me")
    (line,) = served_lines(gateway)
    assert line["cache"] == "MISS" and line["stream_ended"] == "complete" and line["stored"] is True
    assert line["completion_tokens"] > 0 and line["time_to_first_token_ms"] > 0 and line["caller"] == CALLER
    assert line["correlation_id"]  # API Gateway's request id, handed over in x-amzn-request-context
    emitted = sum_emf_metrics(capsys.readouterr().out)
    assert {"TimeToFirstToken", "StreamDuration", "CacheMiss", "PromptTokens"} <= set(emitted)


def test_a_stream_that_reaches_the_cap_ends_with_an_error_event(
    client, emulator, gateway, monkeypatch, reconfigure
) -> None:

    # Given a 1.5 s cap and an answer that takes about 2.5 s to write
    monkeypatch.setenv("STREAM_MAX_MS", "1500")
    reconfigure()
    emulator.script(Fault(chunk_delay=0.2))
    _, raw = read_all(client, "longer than the cap allows")
    events = data_events(raw)
    assert "[DONE]" not in events and "time limit" in json.loads(events[-1])["message"]
    wait_for(lambda: served_lines(gateway))
    assert served_lines(gateway)[0]["stream_ended"] == "too_long" and served_lines(gateway)[0]["stored"] is False


def test_a_repeat_sent_the_moment_done_arrives_is_a_hit(client, emulator, monkeypatch) -> None:
    from mistral_gateway.policies.cache import ResponseCache

    # Given a cache whose store is slow (a DynamoDB PutItem on a bad day)
    store = ResponseCache.put

    def slow_put(self: Any, *args: Any, **kwargs: Any) -> bool:
        threading.Event().wait(0.3)
        return store(self, *args, **kwargs)

    monkeypatch.setattr(ResponseCache, "put", slow_put)
    # When a client reads a stream up to [DONE] and, without waiting for the connection to close, asks again
    with streamed(client, "ask again at once") as response:
        for line in response.iter_lines():
            if line == "data: [DONE]":
                break
    repeat, _ = read_all(client, "ask again at once")
    # Then [DONE] came only once the answer was stored: the repeat is a HIT, and Mistral was asked once
    assert repeat.headers["x-cache"] == "HIT"
    assert emulator.calls("/v1/chat/completions") == 1
