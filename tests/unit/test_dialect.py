"""The OpenAI SDK's dialect becomes Mistral's before validation, keying and the upstream call."""

from __future__ import annotations

from mistral_gateway.dialect import mistral_chat


def test_openai_names_become_mistral_names() -> None:
    body = {"model": "m", "messages": [], "seed": 1, "max_completion_tokens": 9, "stream_options": {"x": 1}}
    assert mistral_chat(body) == {"model": "m", "messages": [], "random_seed": 1, "max_tokens": 9}


def test_mistral_values_win_and_plain_bodies_are_untouched() -> None:
    assert mistral_chat({"random_seed": 2, "seed": 1})["random_seed"] == 2
    body = {"model": "m", "messages": []}
    assert mistral_chat(body) is body
