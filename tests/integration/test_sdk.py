"""The official mistralai SDK, pointed at the gateway over HTTP, works unchanged."""

from __future__ import annotations

import httpx2
import pytest
from mistralai.client import Mistral, errors

from mistral_gateway.container import settings


def test_the_sdk_gets_a_parsed_answer_and_a_cache_hit_on_repeat(http_gateway, emulator) -> None:
    cache_headers: list[str] = []
    http = httpx2.Client(event_hooks={"response": [lambda r: cache_headers.append(r.headers.get("x-cache"))]})
    client = Mistral(api_key="any-caller-key", server_url=http_gateway, client=http)
    messages = [{"role": "user", "content": "Tell me about caching"}]

    first = client.chat.complete(model="mistral-small-latest", messages=messages)
    second = client.chat.complete(model="mistral-small-latest", messages=messages)

    assert cache_headers == ["MISS", "HIT"]
    assert first.choices[0].message.content.endswith("Tell me about caching")
    assert first.usage.prompt_tokens > 0
    assert second == first
    assert emulator.calls("/v1/chat/completions") == 1


def test_the_sdk_works_with_a_stage_prefix(http_gateway, emulator) -> None:
    client = Mistral(api_key="k", server_url=f"{http_gateway}/prod")
    answer = client.chat.complete(model="mistral-small-latest", messages=[{"role": "user", "content": "staged"}])
    assert answer.choices[0].finish_reason == "stop"


def test_the_sdk_surfaces_our_errors(http_gateway, emulator) -> None:
    client = Mistral(api_key="k", server_url=http_gateway)
    with pytest.raises(errors.MistralError) as caught:
        client.chat.complete(model="mistral-small-latest", messages=[{"role": "user", "content": "x"}], temperature=5)
    assert caught.value.status_code == 422
    assert "temperature" in caught.value.body
    assert settings().table_name  # the handler ran with the template's settings
