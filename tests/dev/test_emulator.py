"""The Mistral emulator speaks the wire format the real SDK expects, and injects faults on request."""

from __future__ import annotations

import base64
import json
import struct
import urllib.request
from collections.abc import Iterator

import httpx2
import pytest
from mistralai.client import Mistral, errors

from gateway_dev.emulator.server import Fault, MistralEmulator

KEY = "emulator-test-key"


@pytest.fixture(scope="module")
def server() -> Iterator[MistralEmulator]:
    with MistralEmulator(api_key=KEY, accept_any_model=True) as emulator:
        yield emulator


@pytest.fixture
def emulator(server: MistralEmulator) -> Iterator[MistralEmulator]:
    server.reset()
    yield server


@pytest.fixture
def client(emulator: MistralEmulator) -> Mistral:
    return Mistral(api_key=KEY, server_url=emulator.url)


def test_chat_is_deterministic_and_parsed_by_the_sdk(client: Mistral, emulator: MistralEmulator) -> None:
    messages = [{"role": "user", "content": "Hello emulator"}]
    first = client.chat.complete(model="mistral-small-latest", messages=messages)
    second = client.chat.complete(model="mistral-small-latest", messages=messages)
    assert first.choices[0].message.content == "Emulated answer to: Hello emulator"
    assert first.id == second.id and first.usage.prompt_tokens == 2
    assert emulator.calls("/v1/chat/completions") == 2


def test_chat_stream_ends_with_a_finish_reason(client: Mistral) -> None:
    chunks = list(client.chat.stream(model="m", messages=[{"role": "user", "content": "stream this please"}]))
    text = "".join(chunk.data.choices[0].delta.content or "" for chunk in chunks)
    assert text == "Emulated answer to: stream this please"
    assert chunks[-1].data.choices[0].finish_reason == "stop"
    assert chunks[-1].data.usage is not None


def test_tool_calls_and_max_tokens(client: Mistral) -> None:
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {}}}]
    called = client.chat.complete(
        model="m", messages=[{"role": "user", "content": "x"}], tools=tools, tool_choice="any"
    )
    assert called.choices[0].finish_reason == "tool_calls"
    assert called.choices[0].message.tool_calls[0].function.name == "lookup"
    cut = client.chat.complete(model="m", messages=[{"role": "user", "content": "a b c d"}], max_tokens=2)
    assert cut.choices[0].finish_reason == "length"


def test_models_embeddings_and_fim(client: Mistral, emulator: MistralEmulator) -> None:
    assert "mistral-embed" in [card.id for card in client.models.list().data]
    vectors = client.embeddings.create(model="mistral-embed", inputs=["a", "b"])
    assert len(vectors.data) == 2 and len(vectors.data[0].embedding) == 1024
    request = urllib.request.Request(
        f"{emulator.url}/v1/embeddings",
        method="POST",
        data=json.dumps({"model": "mistral-embed", "input": ["a"], "encoding_format": "base64"}).encode(),
        headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request) as response:
        assert response.headers["x-mistral-emulator"] == "true"
        encoded = json.load(response)["data"][0]["embedding"]
    decoded = struct.unpack("<1024f", base64.b64decode(encoded))
    assert decoded == pytest.approx(vectors.data[0].embedding, abs=1e-6)
    fim = client.fim.complete(model="codestral-latest", prompt="def f():", suffix="")
    assert fim.choices[0].message.content


@pytest.mark.parametrize(
    ("fault", "status"),
    [(Fault(status=429, retry_after=2), 429), (Fault(status=503), 503), (Fault(status=400), 400)],
)
def test_scripted_statuses(client: Mistral, emulator: MistralEmulator, fault: Fault, status: int) -> None:
    emulator.script(fault)
    with pytest.raises(errors.MistralError) as caught:
        client.chat.complete(model="m", messages=[{"role": "user", "content": "x"}])
    assert caught.value.status_code == status
    if fault.retry_after:
        assert caught.value.headers["retry-after"] == "2"
    assert client.chat.complete(model="m", messages=[{"role": "user", "content": "x"}]).choices


def test_wrong_key_missing_fields_and_unknown_paths(emulator: MistralEmulator) -> None:
    with pytest.raises(errors.MistralError) as caught:
        Mistral(api_key="wrong", server_url=emulator.url).models.list()
    assert caught.value.status_code == 401
    with pytest.raises(errors.HTTPValidationError):
        Mistral(api_key=KEY, server_url=emulator.url).chat.complete(model="m", messages=[])
    request = urllib.request.Request(f"{emulator.url}/v1/nothing", headers={"Authorization": f"Bearer {KEY}"})
    with pytest.raises(urllib.error.HTTPError) as http_error:
        urllib.request.urlopen(request)
    assert http_error.value.code == 404


def test_garbage_drop_delay_and_cut_streams(client: Mistral, emulator: MistralEmulator) -> None:
    emulator.script(Fault(garbage=True))
    with pytest.raises(errors.MistralError):
        client.chat.complete(model="m", messages=[{"role": "user", "content": "x"}])
    emulator.script(Fault(drop=True))
    with pytest.raises(httpx2.TransportError):
        client.chat.complete(model="m", messages=[{"role": "user", "content": "x"}])
    emulator.script(Fault(delay=0.5))
    with pytest.raises(httpx2.TimeoutException):
        client.chat.complete(model="m", messages=[{"role": "user", "content": "x"}], timeout_ms=100)
    emulator.script(Fault(stream_cut=True))
    finish_reasons = []
    with pytest.raises(httpx2.TransportError):
        for chunk in client.chat.stream(model="m", messages=[{"role": "user", "content": "cut me"}]):
            finish_reasons.append(chunk.data.choices[0].finish_reason)
    assert "stop" not in finish_reasons
