"""The clients people already use work unchanged: the mistralai and openai SDKs over HTTP, every endpoint."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx2
import pytest
from mistralai.client import Mistral

from gateway_dev.cloud.template import ROOT

TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]


@pytest.fixture
def cache_log() -> list[str]:
    return []


def stores_landed(gateway: Any) -> Callable[[Any], None]:
    """A request hook: send each request once the previous answers' stores (after their responses) have
    landed. A streamed repeat of a plain answer takes no lease, so one sent on loopback before that store
    would be a miss (docs/decisions.md, "The store after the response")."""
    return lambda request: gateway.settle()


@pytest.fixture
def mistral(gateway: Any, http_gateway: str, cache_log: list[str]) -> Mistral:
    hooks = {
        "request": [stores_landed(gateway)],
        "response": [lambda r: cache_log.append(r.headers.get("x-cache", "-"))],
    }
    return Mistral(api_key="caller-key", server_url=f"{http_gateway}/prod", client=httpx2.Client(event_hooks=hooks))


@pytest.fixture
def openai_client(gateway: Any, http_gateway: str) -> Any:
    import httpx
    from openai import OpenAI

    http = httpx.Client(event_hooks={"request": [stores_landed(gateway)]})
    return OpenAI(api_key="caller-key", base_url=f"{http_gateway}/v1", max_retries=0, http_client=http)


def test_mistral_sdk_stream_is_parsed_and_replayed_from_the_cache(mistral, emulator, cache_log) -> None:
    messages = [{"role": "user", "content": "stream me a story"}]
    first = list(mistral.chat.stream(model="mistral-small-latest", messages=messages))
    second = list(mistral.chat.stream(model="mistral-small-latest", messages=messages))
    assert cache_log == ["MISS", "HIT"]
    for chunks in (first, second):
        text = "".join(chunk.data.choices[0].delta.content or "" for chunk in chunks)
        assert text == "Emulated answer to: stream me a story"
        assert chunks[-1].data.choices[0].finish_reason == "stop"
        assert chunks[-1].data.usage.completion_tokens > 0
    assert emulator.calls("/v1/chat/completions") == 1


def test_one_cache_entry_serves_plain_and_streamed_forms(mistral, emulator, cache_log) -> None:
    messages = [{"role": "user", "content": "both forms"}]
    plain = mistral.chat.complete(model="mistral-small-latest", messages=messages)
    streamed = list(mistral.chat.stream(model="mistral-small-latest", messages=messages))
    again = mistral.chat.complete(model="mistral-small-latest", messages=messages)
    assert cache_log == ["MISS", "HIT", "HIT"]
    assert "".join(c.data.choices[0].delta.content or "" for c in streamed) == plain.choices[0].message.content
    assert again == plain


def test_tool_calls_survive_the_stream_replay(mistral, emulator) -> None:
    messages = [{"role": "user", "content": "weather in Paris"}]
    plain = mistral.chat.complete(model="m", messages=messages, tools=TOOLS, tool_choice="any")
    streamed = list(mistral.chat.stream(model="m", messages=messages, tools=TOOLS, tool_choice="any"))
    calls = [call for chunk in streamed for call in (chunk.data.choices[0].delta.tool_calls or [])]
    assert plain.choices[0].finish_reason == "tool_calls"
    assert [call.function.name for call in calls] == ["get_weather"]
    assert calls[0].id == plain.choices[0].message.tool_calls[0].id
    assert streamed[-1].data.choices[0].finish_reason == "tool_calls"


def test_models_embeddings_and_fim_through_the_mistral_sdk(mistral, emulator, cache_log) -> None:
    listed = mistral.models.list()
    assert "mistral-small-latest" in [card.id for card in listed.data]
    mistral.models.list()
    vectors = mistral.embeddings.create(model="mistral-embed", inputs=["alpha", "beta"])
    assert len(vectors.data) == 2 and len(vectors.data[1].embedding) == 1024
    mistral.embeddings.create(model="mistral-embed", inputs=["alpha", "beta"])
    fim = mistral.fim.complete(model="codestral-latest", prompt="def add(a, b):", suffix="return c")
    assert fim.choices[0].message.content
    fim_chunks = list(mistral.fim.stream(model="codestral-latest", prompt="def add(a, b):", suffix="return c"))
    assert fim_chunks[-1].data.choices[0].finish_reason == "stop"
    assert cache_log == ["MISS", "HIT", "MISS", "HIT", "MISS", "HIT"]
    assert emulator.calls("/v1/models") == 1 and emulator.calls("/v1/embeddings") == 1


def test_openai_sdk_chat_plain_and_streamed(openai_client, emulator) -> None:
    answer = openai_client.chat.completions.create(
        model="mistral-small-latest",
        messages=[{"role": "user", "content": "hi from openai"}],
        seed=7,
        max_completion_tokens=50,
    )
    assert answer.choices[0].message.content == "Emulated answer to: hi from openai"
    sent = emulator.requests[-1].json
    assert sent["random_seed"] == 7 and sent["max_tokens"] == 50
    assert "seed" not in sent and "max_completion_tokens" not in sent
    stream = openai_client.chat.completions.create(
        model="mistral-small-latest",
        messages=[{"role": "user", "content": "hi from openai"}],
        seed=7,
        max_completion_tokens=50,
        stream=True,
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == answer.choices[0].message.content
    assert emulator.calls("/v1/chat/completions") == 1  # the stream was a cache hit of the plain answer


def test_openai_sdk_embeddings_default_to_base64_floats(openai_client, mistral, emulator) -> None:
    from_openai = openai_client.embeddings.create(model="mistral-embed", input=["gamma"])
    from_mistral = mistral.embeddings.create(model="mistral-embed", inputs=["gamma"])
    assert from_openai.data[0].embedding == pytest.approx(from_mistral.data[0].embedding, abs=1e-6)
    assert emulator.calls("/v1/embeddings") == 1
    assert "encoding_format" not in emulator.requests[-1].json


def test_upstream_errors_on_a_stream_request_are_a_proper_status(mistral, emulator) -> None:
    from mistralai.client import errors

    from gateway_dev.emulator.server import Fault

    emulator.script(*[Fault(status=503)] * 3)
    with pytest.raises(errors.MistralError) as caught:
        list(mistral.chat.stream(model="m", messages=[{"role": "user", "content": "fails"}]))
    assert caught.value.status_code == 502


def test_batch_answers_each_request_in_order_with_its_own_status(gateway, emulator, chat_body) -> None:
    batch = {"requests": [chat_body("one"), {"model": "m", "messages": []}, chat_body("three")]}
    first = gateway.request("POST", "/v1/batch/chat/completions", batch)
    assert first.status == 200
    results = first.json["data"]
    assert [r["index"] for r in results] == [0, 1, 2]
    assert [r["status"] for r in results] == [200, 422, 200]
    assert results[0]["body"]["choices"][0]["message"]["content"].endswith("one")
    assert results[1]["body"]["object"] == "error"
    again = gateway.request("POST", "/v1/batch/chat/completions", batch).json["data"]
    assert [r["cache"] for r in again] == ["HIT", None, "HIT"]
    assert emulator.calls("/v1/chat/completions") == 2


@pytest.mark.parametrize(
    "body",
    [{}, {"requests": []}, {"requests": "x"}, {"requests": [{"model": "m"}] * 21}],
)
def test_a_malformed_batch_is_a_400(gateway, emulator, body) -> None:
    assert gateway.request("POST", "/v1/batch/chat/completions", body).status == 400
    assert emulator.calls() == 0


def test_health_reports_secret_and_cache_without_calling_mistral(gateway, emulator, reconfigure) -> None:
    import boto3

    healthy = gateway.request("GET", "/health")
    assert healthy.status == 200 and healthy.json == {"status": "ok", "checks": {"secret": "ok", "cache": "ok"}}
    boto3.client("dynamodb").delete_table(TableName="mistral-gateway-CacheTable")
    assert gateway.request("GET", "/health").json["checks"]["cache"] == "unavailable"
    from aws_lambda_powertools.utilities import parameters

    boto3.client("secretsmanager").delete_secret(
        SecretId="mistral-gateway/mistral-api-key", ForceDeleteWithoutRecovery=True
    )
    parameters.clear_caches()
    reconfigure()
    assert gateway.request("GET", "/health").status == 503
    assert emulator.calls() == 0


def test_openapi_document_and_swagger_ui_are_served(gateway, template) -> None:
    spec = gateway.request("GET", "/openapi.json")
    assert spec.status == 200
    document = spec.json
    # Every route the template gives API Gateway is in the document, with its method
    documented = {(path, method.upper()) for path, item in document["paths"].items() for method in item}
    assert {(route.path, route.method) for route in template.routes()} == documented
    body = document["paths"]["/v1/chat/completions"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"]["$ref"].endswith("ChatCompletionRequest")
    assert "temperature" in document["components"]["schemas"]["ChatCompletionRequest"]["properties"]
    ui = gateway.request("GET", "/docs")
    assert ui.status == 200 and b"swagger" in ui.body.lower()


def test_the_checked_in_openapi_document_is_current(gateway) -> None:
    served = gateway.request("GET", "/openapi.json").json
    checked_in = json.loads((ROOT / "docs" / "openapi.json").read_text())
    assert served == checked_in, "run: make openapi"


@pytest.mark.parametrize("cache_seconds", ["300", "0"])
def test_local_caller_keys_follow_the_clouds_rule(gateway, emulator, chat_body, cache_seconds) -> None:
    import httpx2

    from gateway_dev.cloud.template import Template
    from gateway_dev.runner.asgi import BackgroundServer, LocalGateway
    from gateway_dev.runner.bridge import ApiBridge

    template = Template(parameters={"AuthorizerCacheSeconds": cache_seconds})
    server = BackgroundServer(LocalGateway(ApiBridge(template, api_keys={"good-key": "key-id-1"})))
    try:
        client = httpx2.Client(base_url=server.url)
        body = json.dumps(chat_body("auth"))
        for path in ("/v1/chat/completions", "/v1/embeddings"):  # a streamed route and a buffered one
            for headers in (
                {},
                {"Authorization": "Bearer bad"},
                {"Authorization": "Bearer undefined", "x-api-key": "good-key"},
            ):
                refused = client.post(path, content=body, headers=headers)
                assert refused.status_code == 401 and refused.json()["type"] == "authentication_error"
        bearer = client.post("/v1/chat/completions", content=body, headers={"Authorization": "Bearer good-key"})
        assert bearer.status_code == 200
        # x-api-key alone: refused before the authorizer while its decision is cached by Authorization
        only_x_api_key = client.post("/v1/chat/completions", content=body, headers={"x-api-key": "good-key"})
        assert only_x_api_key.status_code == (401 if cache_seconds != "0" else 200)
        assert client.get("/health").status_code == 200  # public: no key
    finally:
        server.stop()
    assert emulator.calls() == 1
