"""Our request model mirrors the mistralai SDK's and enforces Mistral's ranges."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from mistral_gateway.requests.models import ChatCompletionRequest

VALID: dict[str, Any] = {"model": "mistral-small-latest", "messages": [{"role": "user", "content": "Hi"}]}


def test_the_field_set_equals_the_sdks_request_model() -> None:
    from mistralai.client.models import ChatCompletionRequest as SdkRequest

    assert set(ChatCompletionRequest.model_fields) == set(SdkRequest.model_fields)


@pytest.mark.parametrize(
    "fields",
    [
        {"temperature": 0.0},
        {"temperature": 2},
        {"top_p": 0.5},
        {"max_tokens": 1},
        {"random_seed": 42},
        {"stop": "x"},
        {"stop": ["a", "b"]},
        {"response_format": {"type": "json_object"}},
        {
            "tools": [{"type": "function", "function": {"name": "get", "parameters": {"type": "object"}}}],
            "tool_choice": "any",
        },
        {"tool_choice": {"type": "function", "function": {"name": "get"}}},
        {"safe_prompt": True},
        {"presence_penalty": -2},
        {"frequency_penalty": 2},
        {"n": 3},
        {"stream": True},
        {
            "messages": [
                {"role": "system", "content": "s"},
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "t"}, {"type": "image_url", "image_url": "https://x/y.png"}],
                },
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [{"id": "abc", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
                },
                {"role": "tool", "content": "42", "tool_call_id": "abc", "name": "f"},
            ]
        },
    ],
)
def test_valid_requests_pass(fields: dict[str, Any]) -> None:
    ChatCompletionRequest.model_validate({**VALID, **fields})


@pytest.mark.parametrize(
    ("fields", "location"),
    [
        ({"temperature": 2.5}, "temperature"),
        ({"temperature": "hot"}, "temperature"),
        ({"top_p": 1.5}, "top_p"),
        ({"max_tokens": -1}, "max_tokens"),
        ({"n": 0}, "n"),
        ({"presence_penalty": 3}, "presence_penalty"),
        ({"stop": 5}, "stop"),
        ({"safe_prompt": "yes"}, "safe_prompt"),
        ({"stream": "yes"}, "stream"),
        ({"tool_choice": "sometimes"}, "tool_choice"),
        ({"response_format": {"type": "xml"}}, "response_format"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "messages"),
        ({"messages": [{"role": "user"}]}, "messages"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages"),
        ({"model": ""}, "model"),
        ({"unknown_field": 1}, "unknown_field"),
    ],
)
def test_invalid_requests_are_rejected_at_the_right_field(fields: dict[str, Any], location: str) -> None:
    with pytest.raises(ValidationError) as caught:
        ChatCompletionRequest.model_validate({**VALID, **fields})
    assert any(error["loc"][0] == location for error in caught.value.errors())


def test_sdk_arguments_carry_only_what_the_caller_set() -> None:
    request = ChatCompletionRequest.model_validate({**VALID, "temperature": 0.2, "max_tokens": None, "stream": True})
    assert request.sdk_arguments() == {**VALID, "temperature": 0.2}
