"""The emulator answers every client feature the gateway is tried with, deterministically and in Mistral's shape."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx2
import jsonschema
import pytest

from gateway_dev.emulator.server import MistralEmulator

KEY = "surface-test-key"
SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "rank": {"type": "integer", "minimum": 1}, "tags": {
        "type": "array", "items": {"type": "string"}, "minItems": 2}},
    "required": ["city", "rank", "tags"],
    "additionalProperties": False,
}  # fmt: skip


@pytest.fixture(scope="module")
def emulator() -> Iterator[MistralEmulator]:
    with MistralEmulator(api_key=KEY) as server:
        yield server


def post(emulator: MistralEmulator, path: str, body: dict[str, Any]) -> httpx2.Response:
    return httpx2.post(f"{emulator.url}{path}", json=body, headers={"Authorization": f"Bearer {KEY}"})


def chat(emulator: MistralEmulator, **fields: Any) -> dict[str, Any]:
    body = {"model": "mistral-small-latest", "messages": [{"role": "user", "content": "Where?"}], **fields}
    answer = post(emulator, "/v1/chat/completions", body)
    assert answer.status_code == 200, answer.text
    return dict(answer.json()["choices"][0]["message"])


def test_json_object_answers_are_json_objects(emulator) -> None:
    content = chat(emulator, response_format={"type": "json_object"})["content"]
    assert isinstance(json.loads(content), dict)


def test_json_schema_answers_validate_against_the_schema(emulator) -> None:
    response_format = {"type": "json_schema", "json_schema": {"name": "place", "schema": SCHEMA, "strict": True}}
    first = chat(emulator, response_format=response_format)["content"]
    jsonschema.validate(json.loads(first), SCHEMA)
    assert chat(emulator, response_format=response_format)["content"] == first


def test_tool_arguments_validate_against_the_tools_parameters(emulator) -> None:
    tools = [
        {"type": "function", "function": {"name": "noop", "parameters": {"type": "object"}}},
        {"type": "function", "function": {"name": "find_place", "parameters": SCHEMA}},
    ]
    choice = {"type": "function", "function": {"name": "find_place"}}
    call = chat(emulator, tools=tools, tool_choice=choice)["tool_calls"][0]["function"]
    assert call["name"] == "find_place"
    jsonschema.validate(json.loads(call["arguments"]), SCHEMA)


def test_unknown_models_are_answered_as_mistral_does(emulator) -> None:
    refused = post(
        emulator, "/v1/chat/completions", {"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]}
    )
    assert refused.status_code == 400
    assert refused.json() == {
        "object": "error", "message": "Invalid model: gpt-4o", "type": "invalid_model", "param": None, "code": "1500"
    }  # fmt: skip
    card = httpx2.get(f"{emulator.url}/v1/models/codestral-latest", headers={"Authorization": f"Bearer {KEY}"})
    assert card.status_code == 200 and card.json()["capabilities"]["completion_fim"] is True
    missing = httpx2.get(f"{emulator.url}/v1/models/gpt-4o", headers={"Authorization": f"Bearer {KEY}"})
    assert missing.status_code == 404 and missing.json()["type"] == "invalid_model"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (
            "/v1/ocr",
            {"model": "mistral-ocr-latest", "document": {"type": "document_url", "document_url": "https://a/b"}},
        ),
        ("/v1/moderations", {"model": "mistral-moderation-latest", "input": ["a", "b"]}),
        ("/v1/chat/moderations", {"model": "mistral-moderation-latest", "input": [{"role": "user", "content": "a"}]}),
        ("/v1/classifications", {"model": "ft:classifier:x", "input": ["a"]}),
        ("/v1/agents/completions", {"agent_id": "ag-1", "messages": [{"role": "user", "content": "a"}]}),
    ],
)
def test_the_routes_the_gateway_caches_or_passes_answer_deterministically(emulator, path, body) -> None:
    first, second = post(emulator, path, body), post(emulator, path, body)
    assert first.status_code == 200 and first.headers["content-type"] == "application/json"
    assert {k: v for k, v in first.json().items() if k != "created"} == {
        k: v for k, v in second.json().items() if k != "created"
    }


def test_auto_tool_choice_calls_a_tool_then_answers_its_result(emulator) -> None:
    tools = [{"type": "function", "function": {"name": "find_place", "parameters": SCHEMA}}]
    call = chat(emulator, tools=tools)["tool_calls"][0]
    after = [
        {"role": "user", "content": "Where?"},
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "name": "find_place", "content": "Paris"},
    ]
    assert chat(emulator, tools=tools, messages=after)["content"].startswith("Emulated answer")
    assert chat(emulator, tools=tools, tool_choice="none")["tool_calls"] is None
