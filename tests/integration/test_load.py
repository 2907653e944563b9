"""Load through the local HTTP path: many clients, repeated prompts, every request answered, one upstream
call per distinct prompt (single-flight plus the cache), and the gateway's own log audit on top."""

from __future__ import annotations

import json
import random
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx2

REQUESTS, CLIENTS, PROMPTS = 200, 16, 20


def test_two_hundred_requests_from_sixteen_clients_make_one_upstream_call_per_prompt(
    http_gateway: str, emulator: Any
) -> None:
    # Given 20 distinct prompts asked 10 times each, in a shuffled order, by 16 concurrent clients
    prompts = [f"load prompt number {n}" for n in range(PROMPTS)] * (REQUESTS // PROMPTS)
    random.Random(7).shuffle(prompts)
    clients = [httpx2.Client(base_url=http_gateway, timeout=30) for _ in range(CLIENTS)]

    def ask(index: int) -> tuple[int, str, str]:
        body = {"model": "mistral-small-latest", "messages": [{"role": "user", "content": prompts[index]}]}
        response = clients[index % CLIENTS].post("/v1/chat/completions", json=body)
        answer = response.json()["choices"][0]["message"]["content"] if response.status_code == 200 else ""
        return response.status_code, response.headers.get("x-cache", ""), answer

    # When they all run
    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        results = list(pool.map(ask, range(REQUESTS)))
    for client in clients:
        client.close()

    # Then every request succeeded with the answer to its own prompt
    assert [status for status, _, _ in results] == [200] * REQUESTS
    assert all(answer.endswith(prompts[i]) for i, (_, _, answer) in enumerate(results))
    # And Mistral was asked exactly once per distinct prompt
    assert emulator.calls("/v1/chat/completions") == PROMPTS
    caches = [cache for _, cache, _ in results]
    assert caches.count("MISS") == PROMPTS and caches.count("HIT") == REQUESTS - PROMPTS
    print(json.dumps({"requests": REQUESTS, "clients": CLIENTS, "upstream_calls": PROMPTS, "5xx": 0}))
