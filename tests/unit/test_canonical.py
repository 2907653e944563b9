"""The cache key: requests that must get the same answer share a key; anything that changes it does not."""

from __future__ import annotations

from typing import Any

import pytest

from mistral_gateway.requests.canonical import cache_key, canonical_chat

BASE: dict[str, Any] = {"model": "mistral-small-latest", "messages": [{"role": "user", "content": "Hi"}]}


def key(body: dict[str, Any], scope: str = "anonymous") -> str:
    return cache_key("chat", scope, canonical_chat(body))


@pytest.mark.parametrize(
    "variant",
    [
        {"messages": BASE["messages"], "model": BASE["model"]},  # key order
        {**BASE, "temperature": None, "max_tokens": None},  # explicit nulls
        {**BASE, "stream": True},  # streamed and plain share one entry
        {**BASE, "safe_prompt": False, "n": 1, "top_p": 1, "presence_penalty": 0, "frequency_penalty": 0.0},
        {**BASE, "response_format": {"type": "text"}, "stop": [], "tools": []},
        {**BASE, "metadata": {"trace": "abc"}, "prompt_cache_key": "x", "service_tier": "auto"},
        {**BASE, "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]},
        {**BASE, "tool_choice": "auto"},
        {**BASE, "parallel_tool_calls": True},
    ],
)
def test_equivalent_requests_share_a_key(variant: dict[str, Any]) -> None:
    assert key(variant) == key(BASE)


@pytest.mark.parametrize(
    "variant",
    [
        {**BASE, "model": "mistral-large-latest"},
        {**BASE, "messages": [{"role": "user", "content": "Hi!"}]},
        {**BASE, "messages": [{"role": "system", "content": "Be terse"}, *BASE["messages"]]},
        {**BASE, "temperature": 0.2},
        {**BASE, "max_tokens": 10},
        {**BASE, "random_seed": 7},
        {**BASE, "stop": ["\n"]},
        {**BASE, "safe_prompt": True},
        {**BASE, "n": 2},
        {**BASE, "response_format": {"type": "json_object"}},
        {**BASE, "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]},
    ],
)
def test_anything_that_changes_the_answer_changes_the_key(variant: dict[str, Any]) -> None:
    assert key(variant) != key(BASE)


def test_numbers_are_normalised_but_booleans_are_not_numbers() -> None:
    assert key({**BASE, "temperature": 1}) == key({**BASE, "temperature": 1.0})
    assert key({**BASE, "temperature": True}) != key({**BASE, "temperature": 1.0})


def test_stop_as_string_equals_stop_as_one_item_list() -> None:
    assert key({**BASE, "stop": "END"}) == key({**BASE, "stop": ["END"]})


def test_an_invalid_value_of_an_ignored_field_does_not_share_the_valid_key() -> None:
    assert key({**BASE, "stream": "yes"}) != key(BASE)


def test_callers_never_share_keys() -> None:
    assert key(BASE, "caller:a") != key(BASE, "caller:b")
    assert key(BASE, "caller:a") != key(BASE, "anonymous")


def test_the_key_is_a_hash_that_reveals_nothing() -> None:
    value = key({**BASE, "messages": [{"role": "user", "content": "my secret prompt"}]})
    assert value.startswith("chat#") and len(value) == len("chat#") + 64
    assert "secret" not in value
