"""prompt_cache_key is namespaced per caller on every route that takes one, and the prompt tokens Mistral serves
from its prompt cache are priced at their discounted rate. The emulator keeps a prompt cache per key: a key it
has seen before reports the prompt as cached, so sharing (or not) is visible from outside."""

from __future__ import annotations

from typing import Any

import pytest

from mistral_gateway.requests import prompt_cache

ALICE, BOB = "key-id-alice", "key-id-bob"
CHAT, FIM, AGENTS, RESPONSES = "/v1/chat/completions", "/v1/fim/completions", "/v1/agents/completions", "/v1/responses"
NO_ANSWER_CACHE = {"X-Gateway-Cache-Control": "no-cache"}


def keys_sent(emulator: Any, path: str) -> list[str]:
    return [r.json.get("prompt_cache_key") for r in emulator.requests if r.path == path]


def test_two_callers_with_the_same_key_never_share_mistrals_prompt_cache(gateway, emulator, chat_body) -> None:
    body = chat_body("a long shared system prompt", prompt_cache_key="support-bot")
    # Given Alice warmed Mistral's prompt cache with her key
    first = gateway.chat(body, api_key_id=ALICE, headers=NO_ANSWER_CACHE)
    assert first.header("X-Usage-Cached-Prompt-Tokens") is None
    again = gateway.chat(body, api_key_id=ALICE, headers=NO_ANSWER_CACHE)
    assert int(again.header("X-Usage-Cached-Prompt-Tokens") or 0) > 0  # her own grouping still works
    # When Bob sends the very same key and prompt
    bobs = gateway.chat(body, api_key_id=BOB, headers=NO_ANSWER_CACHE)
    # Then he does not hit Alice's prompt cache: Mistral saw two different keys, neither of them the caller's
    assert bobs.header("X-Usage-Cached-Prompt-Tokens") is None
    sent = keys_sent(emulator, CHAT)
    assert sent == [prompt_cache.namespaced_key(ALICE, "support-bot")] * 2 + [
        prompt_cache.namespaced_key(BOB, "support-bot")
    ]
    assert "support-bot" not in sent


def test_callers_without_a_key_are_namespaced_too(gateway, emulator, chat_body) -> None:
    gateway.chat(chat_body("no key here"), api_key_id=ALICE, headers=NO_ANSWER_CACHE)
    gateway.chat(chat_body("no key here"), api_key_id=BOB, headers=NO_ANSWER_CACHE)
    assert keys_sent(emulator, CHAT) == [prompt_cache.namespaced_key(ALICE, ""), prompt_cache.namespaced_key(BOB, "")]


def test_cached_prompt_tokens_make_a_cheaper_answer(gateway, chat_body) -> None:
    body = chat_body("price me " * 40, prompt_cache_key="k", model="mistral-large-latest")
    cold = gateway.chat(body, api_key_id=ALICE, headers=NO_ANSWER_CACHE)
    warm = gateway.chat(body, api_key_id=ALICE, headers=NO_ANSWER_CACHE)
    assert cold.header("X-Usage-Prompt-Tokens") == warm.header("X-Usage-Prompt-Tokens")
    cached = int(warm.header("X-Usage-Cached-Prompt-Tokens") or 0)
    prompt = int(warm.header("X-Usage-Prompt-Tokens") or 0)
    completion = int(warm.header("X-Usage-Completion-Tokens") or 0)
    assert cached == prompt
    expected = ((prompt - cached) * 0.50 + cached * 0.05 + completion * 1.50) / 1_000_000
    assert float(warm.header("X-Estimated-Cost-USD") or 0) == pytest.approx(expected, abs=1e-8)
    assert float(warm.header("X-Estimated-Cost-USD") or 0) < float(cold.header("X-Estimated-Cost-USD") or 0)


def test_the_answer_cache_ignores_the_key_and_stays_per_caller(gateway, chat_body) -> None:
    # The key groups prompts for Mistral's prefix cache; it never changes an answer
    assert gateway.chat(chat_body("same answer", prompt_cache_key="one"), api_key_id=ALICE).header("X-Cache") == "MISS"
    assert gateway.chat(chat_body("same answer", prompt_cache_key="two"), api_key_id=ALICE).header("X-Cache") == "HIT"
    assert gateway.chat(chat_body("same answer", prompt_cache_key="one"), api_key_id=BOB).header("X-Cache") == "MISS"


def test_fim_agents_and_responses_are_namespaced(gateway, emulator, owns) -> None:
    owns("agent", "ag_1", ALICE)  # an agent Alice made through the gateway (AccountRoutes=owned)
    fim = {"model": "codestral-latest", "prompt": "def f():", "prompt_cache_key": "k"}
    assert gateway.request("POST", FIM, fim, api_key_id=ALICE).status == 200
    agent = {"agent_id": "ag_1", "messages": [{"role": "user", "content": "hi agent"}], "prompt_cache_key": "k"}
    assert gateway.request("POST", AGENTS, agent, api_key_id=ALICE).status == 200
    response = {"model": "mistral-small-latest", "input": "hi responses", "prompt_cache_key": "k"}
    assert gateway.request("POST", RESPONSES, response, api_key_id=ALICE).status == 200
    mine = prompt_cache.namespaced_key(ALICE, "k")
    assert keys_sent(emulator, FIM) == keys_sent(emulator, AGENTS) == keys_sent(emulator, RESPONSES) == [mine]


def test_a_responses_answer_reports_cached_tokens(gateway, emulator) -> None:
    body = {"model": "mistral-small-latest", "input": "cache me", "prompt_cache_key": "r", "store": False}
    gateway.request("POST", RESPONSES, body, api_key_id=ALICE)
    warm = gateway.request("POST", RESPONSES, body, api_key_id=ALICE)
    assert int(warm.header("X-Usage-Cached-Prompt-Tokens") or 0) > 0


def test_a_chat_streamed_by_the_streaming_function_is_namespaced(keyed_http_gateway, emulator) -> None:
    import httpx

    url = keyed_http_gateway({"stream-key-bob": BOB})
    body = {"model": "mistral-small-latest", "messages": [{"role": "user", "content": "s"}], "stream": True}
    with httpx.stream(
        "POST",
        f"{url}{CHAT}",
        json={**body, "prompt_cache_key": "s"},
        headers={"Authorization": "Bearer stream-key-bob"},
    ) as reply:
        assert reply.status_code == 200 and b"[DONE]" in reply.read()
    assert keys_sent(emulator, CHAT)[-1] == prompt_cache.namespaced_key(BOB, "s")
