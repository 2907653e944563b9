"""token_bound.estimate_tokens on its own: an upper bound of what Mistral can bill, whatever costs tokens."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mistral_gateway.policies import token_bound


def chat(*messages: Any, **fields: Any) -> dict[str, Any]:
    return {"model": "m", "messages": list(messages) or [{"role": "user", "content": "hi"}], **fields}


def estimate(body: dict[str, Any]) -> int:
    return token_bound.estimate_tokens(body, default_completion_tokens=1_024)


def user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


@pytest.mark.parametrize(
    "text",
    ["a " * 15_000, "1234567890" * 3_000, "中文字符" * 5_000, "😀" * 5_000, "\u0301" * 10_000],
    ids=["one-letter words", "digits", "cjk", "emoji", "combining marks"],
)
def test_text_costs_at_most_its_utf8_bytes_and_is_reserved_at_least_that(text: str) -> None:
    assert estimate(chat(user(text), max_tokens=0)) >= len(text.encode())


def test_every_input_that_costs_tokens_is_counted() -> None:
    base = estimate(chat(max_tokens=0))
    description = "d" * 800_000
    tools = [{"type": "function", "function": {"name": "f", "description": description, "parameters": {}}}]
    assert estimate(chat(tools=tools, max_tokens=0)) >= base + 800_000
    schema = {"type": "json_schema", "json_schema": {"name": "s", "schema": {"description": "s" * 50_000}}}
    assert estimate(chat(response_format=schema, max_tokens=0)) >= base + 50_000
    call = {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": {"x": "a" * 40_000}}}]}
    assert estimate(chat(user("hi"), call, max_tokens=0)) >= base + 40_000
    assert estimate(chat(prediction={"type": "content", "content": "p" * 30_000}, max_tokens=0)) >= 30_000


def test_n_multiplies_the_completion() -> None:
    assert estimate(chat(n=128, max_tokens=100)) >= 128 * 100
    assert estimate(chat(n=2.0, max_tokens=50.0)) >= 100


def test_images_cost_a_fixed_generous_amount_not_their_base64_size() -> None:
    image = {"type": "image_url", "image_url": "data:image/png;base64," + "A" * 900_000}
    reserved = estimate(chat(user([{"type": "text", "text": "what is it?"}, image, image]), max_tokens=0))
    assert 2 * token_bound.MEDIA_TOKENS["image_url"] <= reserved < 20_000


def test_embeddings_reserve_their_inputs_and_no_completion() -> None:
    body = {"model": "mistral-embed", "input": ["x" * 1_000, "y" * 1_000]}
    assert 2_000 <= estimate(body) <= len(json.dumps(body)) + token_bound.TEMPLATE_TOKENS
