"""Many invocations at once in one local process (make serve, the HTTP fixtures): each is served as Lambda serves
it, alone in its container. No caller reads another's event, answer, log keys or spend."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import boto3
import httpx
import pytest

from gateway_dev.emulator.embeddings import embedding
from gateway_dev.ops import spend as spend_admin

QUOTA_TABLE = "mistral-gateway-QuotaTable"
CALLERS = {"key-id-alice": "mistral-small-latest", "key-id-bob": "mistral-large-latest"}
PER_CALLER = 16


def prompt(caller: str, n: int) -> str:
    # n + 3 words: the request's prompt tokens (the emulator counts words) say which request a line is about
    return " ".join([caller, "asks", "question", *(["again"] * n)])


def fire(send: Any) -> dict[tuple[str, int], Any]:
    """Every caller's requests at once (one thread each, released together); their answers by (caller, n)."""
    jobs = [(caller, n) for caller in CALLERS for n in range(PER_CALLER)]
    start = threading.Barrier(len(jobs))
    answers: dict[tuple[str, int], Any] = {}

    def run(caller: str, n: int) -> None:
        start.wait()
        answers[(caller, n)] = send(caller, n)

    threads = [threading.Thread(target=run, args=job) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return answers


def assert_each_served_its_own(
    answers: dict[tuple[str, int], Any], lines: list[dict[str, Any]], route: str = "/v1/chat/completions"
) -> None:
    for (caller, n), (status, body) in answers.items():
        assert status == 200, body
        assert body["model"] == CALLERS[caller]
        if route == "/v1/embeddings":
            assert body["data"][0]["embedding"] == pytest.approx(embedding(prompt(caller, n)), rel=1e-6)
        else:
            assert body["choices"][0]["message"]["content"] == "Emulated answer to: " + prompt(caller, n)
        assert body["usage"]["prompt_tokens"] == n + 3
    served = [line for line in lines if line["message"] == "request served" and line.get("caller") in CALLERS]
    assert len(served) == len(answers)
    # Each line is its own request's: its caller's model, that request's tokens, its own invocation's ids
    assert {(line["caller"], line["model"]) for line in served} == set(CALLERS.items())
    for caller in CALLERS:
        tokens = sorted(line["prompt_tokens"] for line in served if line["caller"] == caller)
        assert tokens == [n + 3 for n in range(PER_CALLER)], caller
    assert max(Counter(line["correlation_id"] for line in served).values()) == 1
    assert max(Counter(line["function_request_id"] for line in served).values()) == 1
    # And each key's spend is what its own answers said
    rows = spend_admin.read_counters(boto3.client("dynamodb"), QUOTA_TABLE, set(CALLERS), "2000-01-01")
    for caller, model in CALLERS.items():
        billed = [{"completion_tokens": 0, **body["usage"]} for (who, _), (_, body) in answers.items() if who == caller]
        assert [
            (row["model"], row["requests"], row["prompt_tokens"], row["completion_tokens"])
            for row in rows
            if row["key_id"] == caller
        ] == [
            (
                model,
                PER_CALLER,
                sum(usage["prompt_tokens"] for usage in billed),
                sum(usage["completion_tokens"] for usage in billed),
            )
        ]


def test_concurrent_invocations_each_serve_their_own_caller(gateway, emulator) -> None:
    # Given two callers whose different requests reach the function all at once
    def send(caller: str, n: int) -> tuple[int, Any]:
        body = {"model": CALLERS[caller], "messages": [{"role": "user", "content": prompt(caller, n)}]}
        response = gateway.chat(body, api_key_id=caller)
        return response.status, response.json

    # When they are served
    answers = fire(send)
    # Then each answer, line and spend counter belongs to its own request and caller
    assert_each_served_its_own(answers, gateway.log_records())


@pytest.mark.parametrize("route", ["/v1/chat/completions", "/v1/embeddings"])  # the streaming and buffered functions
def test_concurrent_http_requests_each_serve_their_own_caller(gateway, keyed_http_gateway, route) -> None:
    # Given make serve's HTTP runner with two caller keys, and their requests arriving all at once
    url = keyed_http_gateway({"alice-secret": "key-id-alice", "bob-secret": "key-id-bob"})
    secrets = {"key-id-alice": "alice-secret", "key-id-bob": "bob-secret"}
    gateway.canaries |= set(secrets.values())
    with httpx.Client(base_url=url, timeout=60, limits=httpx.Limits(max_connections=64)) as client:

        def send(caller: str, n: int) -> tuple[int, Any]:
            text = prompt(caller, n)
            gateway.canaries.add(text)
            body: dict[str, Any] = {"model": CALLERS[caller]}
            if route == "/v1/embeddings":
                body["input"] = [text]
            else:
                body["messages"] = [{"role": "user", "content": text}]
            response = client.post(
                route,
                json=body,
                headers={"Authorization": f"Bearer {secrets[caller]}"},
            )
            return response.status_code, response.json()

        # When they are served
        answers = fire(send)
    # Then each answer, line and spend counter belongs to its own request and caller
    assert_each_served_its_own(answers, gateway.log_records(), route)
