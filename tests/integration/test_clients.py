"""Real clients through the local HTTP path (the `make serve` bridge), offline: LangChain, openai and mistralai
structured output, model cards, the routes beyond chat, and a browser's preflight and cross-origin POST."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest
from mistralai.client import Mistral
from pydantic import BaseModel, Field


class City(BaseModel):
    name: str
    country: str
    population: int = Field(ge=0)
    landmarks: list[str]


@pytest.fixture
def mistral(http_gateway: str) -> Mistral:
    return Mistral(api_key="caller-key", server_url=http_gateway)


@pytest.fixture
def openai_client(http_gateway: str) -> Any:
    from openai import OpenAI

    return OpenAI(api_key="caller-key", base_url=f"{http_gateway}/v1", max_retries=0)


# --- structured output and tools ------------------------------------------------------------------------


def test_openai_parse_gets_a_schema_valid_object(openai_client, emulator) -> None:
    completion = openai_client.chat.completions.parse(
        model="mistral-small-latest",
        messages=[{"role": "developer", "content": "Answer in JSON."}, {"role": "user", "content": "Paris?"}],
        response_format=City,
        user="end-user-7",
        store=False,
    )
    city = completion.choices[0].message.parsed
    assert isinstance(city, City) and city.population >= 0
    sent = emulator.requests[-1].json
    assert sent["messages"][0]["role"] == "system" and "user" not in sent and "store" not in sent
    assert sent["response_format"]["type"] == "json_schema"


def test_mistralai_chat_parse_gets_a_schema_valid_object(mistral, emulator) -> None:
    answer = mistral.chat.parse(
        response_format=City, model="mistral-small-latest", messages=[{"role": "user", "content": "Lyon?"}]
    )
    assert isinstance(answer.choices[0].message.parsed, City)


def test_langchain_chat_mistralai_invokes_and_structures(http_gateway, emulator) -> None:
    from langchain_mistralai import ChatMistralAI

    llm = ChatMistralAI(model="mistral-small-latest", api_key="caller-key", endpoint=f"{http_gateway}/v1")
    assert llm.invoke("Hello LangChain").content == "Emulated answer to: Hello LangChain"
    assert isinstance(llm.with_structured_output(City).invoke("Rome?"), City)
    as_json = llm.with_structured_output(City, method="json_schema").invoke("Madrid?")
    assert isinstance(as_json, City)


def test_langchain_chat_openai_invokes_and_structures(http_gateway, emulator) -> None:
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(model="mistral-small-latest", api_key="caller-key", base_url=f"{http_gateway}/v1", max_retries=0)
    assert llm.invoke("Hello OpenAI dialect").content == "Emulated answer to: Hello OpenAI dialect"
    assert isinstance(llm.with_structured_output(City).invoke("Oslo?"), City)  # json_schema by default
    assert isinstance(llm.with_structured_output(City, method="function_calling").invoke("Bern?"), City)
    tools = llm.bind_tools([City], tool_choice="City").invoke("Vienna?")
    assert City.model_validate(tools.tool_calls[0]["args"])


def test_openai_streams_with_developer_messages_and_openai_labels(openai_client, emulator) -> None:
    chunks = openai_client.chat.completions.create(
        model="mistral-small-latest",
        messages=[{"role": "developer", "content": "Be brief."}, {"role": "user", "content": "stream it"}],
        user="end-user-7",
        store=True,
        service_tier="default",
        stream=True,
        stream_options={"include_usage": True},
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text == "Emulated answer to: stream it"
    assert {"user", "store", "service_tier"}.isdisjoint(emulator.requests[-1].json)


def test_langchain_streams_through_both_dialects(http_gateway, emulator) -> None:
    from langchain_mistralai import ChatMistralAI
    from langchain_openai import ChatOpenAI

    for llm in (
        ChatMistralAI(model="mistral-small-latest", api_key="caller-key", endpoint=f"{http_gateway}/v1"),
        ChatOpenAI(model="mistral-small-latest", api_key="caller-key", base_url=f"{http_gateway}/v1", max_retries=0),
    ):
        assert (
            "".join(str(chunk.content) for chunk in llm.stream("stream please")) == "Emulated answer to: stream please"
        )


# --- the routes beyond chat -------------------------------------------------------------------------------


def test_models_retrieve_in_both_sdks(mistral, openai_client, emulator) -> None:
    assert mistral.models.retrieve(model_id="mistral-small-latest").id == "mistral-small-latest"
    assert openai_client.models.retrieve("codestral-latest").id == "codestral-latest"


def test_mistralai_ocr_moderation_and_classification(mistral, emulator, owns) -> None:
    owns("model", "ft:classifier:x")  # Mistral's classifiers are the account's fine-tuned models
    document = {"type": "image_url", "image_url": "data:image/png;base64,AA=="}
    first = mistral.ocr.process(model="mistral-ocr-latest", document=document)
    again = mistral.ocr.process(model="mistral-ocr-latest", document=document)
    assert first.pages[0].markdown == again.pages[0].markdown and emulator.calls("/v1/ocr") == 1
    moderation = mistral.classifiers.moderate(model="mistral-moderation-latest", inputs=["an attack"])
    assert moderation.results[0].categories["violence_and_threats"] is True
    chat_moderation = mistral.classifiers.moderate_chat(
        model="mistral-moderation-latest", inputs=[{"role": "user", "content": "hello"}]
    )
    assert chat_moderation.results
    classification = mistral.classifiers.classify(model="ft:classifier:x", inputs=["lovely"])
    assert set(classification.results[0]["sentiment"].scores) == {"positive", "negative"}


def test_mistralai_agents_and_transcription_pass_through(mistral, emulator, owns) -> None:
    owns("agent", "ag-1")
    answer = mistral.agents.complete(agent_id="ag-1", messages=[{"role": "user", "content": "hi agent"}])
    assert answer.choices[0].message.content == "Emulated answer to: hi agent"
    transcription = mistral.audio.transcriptions.complete(
        model="voxtral-mini-latest", file={"file_name": "a.wav", "content": b"\x00\xff" * 64}
    )
    assert transcription.text.startswith("Emulated transcription of 128 bytes")


def test_an_unknown_model_is_mistrals_error_in_the_sdk(mistral, emulator) -> None:
    from mistralai.client import errors

    emulator.accept_any_model = False
    with pytest.raises(errors.SDKError) as refused:
        mistral.chat.complete(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    assert refused.value.status_code == 400 and "Invalid model: no-such-model" in refused.value.body


# --- browsers ---------------------------------------------------------------------------------------------

BROWSER_KEY = "browser-caller-key"
ORIGIN = "https://app.example"


@pytest.fixture
def keyed_gateway(keyed_http_gateway: Any) -> str:
    return str(keyed_http_gateway({BROWSER_KEY: "browser"}))


def test_a_browser_preflight_needs_no_key(keyed_gateway, emulator) -> None:
    preflight = httpx2.options(
        f"{keyed_gateway}/v1/chat/completions",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type,x-stainless-os",
        },
    )
    assert preflight.status_code in (200, 204)
    assert preflight.headers["access-control-allow-origin"] == "*"
    allowed = {name.strip().lower() for name in preflight.headers["access-control-allow-headers"].split(",")}
    assert {"authorization", "content-type", "x-stainless-os", "cache-control"} <= allowed
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert emulator.calls() == 0


def test_a_cross_origin_post_can_read_the_cache_and_usage_headers(keyed_gateway, emulator) -> None:
    body = {"model": "mistral-small-latest", "messages": [{"role": "user", "content": "from a browser"}]}
    headers = {"Origin": ORIGIN, "Authorization": f"Bearer {BROWSER_KEY}"}
    answers = [httpx2.post(f"{keyed_gateway}/v1/chat/completions", json=body, headers=headers) for _ in range(2)]
    assert [a.headers["x-cache"] for a in answers] == ["MISS", "HIT"]
    for answer in answers:
        assert answer.headers["access-control-allow-origin"] == "*"
        exposed = {name.strip() for name in answer.headers["access-control-expose-headers"].split(",")}
        assert {"X-Cache", "X-Usage-Prompt-Tokens", "X-Usage-Completion-Tokens"} <= exposed


def test_a_refused_browser_call_still_carries_cors(keyed_gateway, emulator) -> None:
    refused = httpx2.post(
        f"{keyed_gateway}/v1/chat/completions", json={}, headers={"Origin": ORIGIN, "Authorization": "Bearer nope"}
    )
    assert refused.status_code == 401 and refused.headers["access-control-allow-origin"] == "*"


def test_a_cross_origin_stream_carries_cors(keyed_gateway, emulator) -> None:
    body = {"model": "mistral-small-latest", "messages": [{"role": "user", "content": "stream to a browser"}]}
    headers = {"Origin": ORIGIN, "Authorization": f"Bearer {BROWSER_KEY}"}
    with httpx2.stream(
        "POST", f"{keyed_gateway}/v1/chat/completions", json={**body, "stream": True}, headers=headers
    ) as streamed:
        assert streamed.headers["content-type"].startswith("text/event-stream")
        assert streamed.headers["access-control-allow-origin"] == "*"
        assert "X-Cache" in streamed.headers["access-control-expose-headers"]
        assert b"[DONE]" in b"".join(streamed.iter_bytes())
