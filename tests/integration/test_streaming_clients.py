"""The clients people stream with, unchanged, against the local gateway: mistralai, openai, LangChain.

Each one gets its first chunk while the emulator still holds the rest of the answer (a gate), and a repeat of
the same stream is a cache hit. Keep-alive comments and a mid-stream error are handled the way each SDK does.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from gateway_dev.emulator.server import Fault

KEY = "stream-client-key"
CHAT = "/v1/chat/completions"
MODEL = "mistral-small-latest"


@pytest.fixture
def url(gateway: Any, template: Any) -> Iterator[str]:
    from gateway_dev.runner.asgi import BackgroundServer, LocalGateway
    from gateway_dev.runner.bridge import ApiBridge

    server = BackgroundServer(LocalGateway(ApiBridge(template, api_keys={KEY: "key-id-clients"})))
    yield server.url
    server.stop()


def mistral_stream(url: str, text: str) -> Iterator[str]:
    from mistralai.client import Mistral

    client = Mistral(api_key=KEY, server_url=url)
    for event in client.chat.stream(model=MODEL, messages=[{"role": "user", "content": text}]):
        yield str(event.data.choices[0].delta.content or "")


def openai_stream(url: str, text: str) -> Iterator[str]:
    from openai import OpenAI

    client = OpenAI(api_key=KEY, base_url=f"{url}/v1", max_retries=0)
    for chunk in client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": text}], stream=True):
        yield chunk.choices[0].delta.content or "" if chunk.choices else ""


def langchain_stream(url: str, text: str) -> Iterator[str]:
    from langchain_mistralai import ChatMistralAI

    chat = ChatMistralAI(model_name=MODEL, api_key=KEY, endpoint=f"{url}/v1", max_retries=0)  # type: ignore[call-arg]
    for chunk in chat.stream(text):
        yield str(chunk.content)


CLIENTS = {"mistralai": mistral_stream, "openai": openai_stream, "langchain": langchain_stream}


@pytest.mark.parametrize("name", sorted(CLIENTS))
def test_each_client_streams_incrementally_and_repeats_are_hits(name, url, emulator) -> None:
    stream = CLIENTS[name]
    gate = threading.Event()
    emulator.script(Fault(gate=gate))
    # When the client starts streaming while Mistral holds its answer after two events
    chunks = stream(url, f"stream through {name}")
    first = next(chunks)
    # Then it has its first chunk before Mistral has finished
    assert not gate.is_set()
    gate.set()
    text = first + "".join(chunks)
    assert text.startswith("Emulated answer to: stream through")
    # And the same stream again comes from the cache, with the same text
    assert "".join(stream(url, f"stream through {name}")) == text
    assert emulator.calls(CHAT) == 1


@pytest.mark.parametrize("name", sorted(CLIENTS))
def test_keep_alive_comments_are_ignored_by_every_client(name, url, emulator, monkeypatch, reconfigure) -> None:

    monkeypatch.setenv("STREAM_KEEPALIVE_MS", "100")
    reconfigure()
    emulator.script(Fault(stall=0.5))
    text = "".join(CLIENTS[name](url, f"a pause for {name}"))
    assert text.startswith(f"Emulated answer to: a pause for {name}")


def test_a_stream_that_breaks_is_an_error_in_the_sdks(url, emulator) -> None:
    from mistralai.client import errors as mistral_errors
    from openai import APIError

    emulator.script(Fault(stream_cut=True), Fault(stream_cut=True))
    # The Mistral SDK cannot read the error event as a chunk, and raises; the OpenAI SDK raises its message
    with pytest.raises(mistral_errors.ResponseValidationError) as mistral_raised:
        "".join(mistral_stream(url, "broken for mistralai"))
    assert "the answer is incomplete" in mistral_raised.value.body  # the event it could not read is ours
    with pytest.raises(APIError, match="the answer is incomplete"):
        "".join(openai_stream(url, "broken for openai"))


def test_langchain_skips_the_error_event_but_never_sees_a_finish(url, emulator) -> None:
    """LangChain's ChatMistralAI drops chunks without choices (the error event too): the stream just ends.
    What tells the app it is incomplete is the missing finish_reason (documented in README)."""
    from langchain_mistralai import ChatMistralAI

    chat = ChatMistralAI(model_name=MODEL, api_key=KEY, endpoint=f"{url}/v1", max_retries=0)  # type: ignore[call-arg]
    whole = [chunk.response_metadata.get("finish_reason") for chunk in chat.stream("complete for langchain")]
    emulator.script(Fault(stream_cut=True))
    broken = [chunk.response_metadata.get("finish_reason") for chunk in chat.stream("broken for langchain")]
    assert "stop" in whole and "stop" not in broken


def test_fim_streams_through_the_mistral_sdk(url, emulator) -> None:
    from mistralai.client import Mistral

    client = Mistral(api_key=KEY, server_url=url)
    events = list(client.fim.stream(model="codestral-latest", prompt="def add(a, b):", suffix="\n"))
    assert events[-1].data.choices[0].finish_reason == "stop"
    assert emulator.calls("/v1/fim/completions") == 1
    again = list(client.fim.stream(model="codestral-latest", prompt="def add(a, b):", suffix="\n"))
    assert [e.data.model_dump() for e in again] == [e.data.model_dump() for e in events]
    assert emulator.calls("/v1/fim/completions") == 1
