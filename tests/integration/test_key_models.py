"""Per-key model access: a model the caller's key may not use is a 403 in Mistral's shape before any upstream
call, on every route that names a model; the model list is filtered; a fallback never serves such a model.
The list lives in the key's quota-table item, beside its budgets (`mistral-gateway keys models`)."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from gateway_dev.emulator.server import Fault
from gateway_dev.ops import quota as quota_tool

SMALL, LARGE, EMBED = "mistral-small-latest", "mistral-large-latest", "mistral-embed"
LIMITED, FREE = "key-id-limited", "key-id-free"


@pytest.fixture
def limited(gateway: Any, template: Any) -> Any:
    table = template.physical_name("QuotaTable")
    quota_tool.set_models(boto3.client("dynamodb"), table, LIMITED, [SMALL, EMBED])
    return gateway


def refused(response: Any, model: str) -> bool:
    body = response.json
    return (
        response.status == 403
        and body["type"] == "permission_error"
        and body["code"] == "model_not_allowed_for_key"
        and model in body["message"]
        and set(body) == {"object", "message", "type", "param", "code"}
    )


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/chat/completions", {"model": LARGE, "messages": [{"role": "user", "content": "hi"}]}),
        ("/v1/chat/completions", {"model": LARGE, "stream": True, "messages": [{"role": "user", "content": "hi"}]}),
        ("/v1/fim/completions", {"model": "codestral-latest", "prompt": "def f(", "suffix": ")"}),
        ("/v1/embeddings", {"model": "codestral-embed", "input": ["x"]}),
        ("/v1/moderations", {"model": "mistral-moderation-latest", "input": ["x"]}),
    ],
    ids=["chat", "chat-stream", "fim", "embeddings", "pass-through"],
)
def test_a_model_the_key_may_not_use_is_a_403_before_any_upstream_call(limited, emulator, path, body) -> None:
    response = limited.request("POST", path, body, api_key_id=LIMITED)
    assert refused(response, body["model"])
    assert emulator.calls() == 0
    # while another key, without a list, may use it
    assert limited.request("POST", path, body, api_key_id=FREE).status < 400


def test_the_models_the_key_may_use_are_served(limited, emulator) -> None:
    chat = {"model": SMALL, "messages": [{"role": "user", "content": "hi"}]}
    assert limited.chat(chat, api_key_id=LIMITED).status == 200
    embed = limited.request("POST", "/v1/embeddings", {"model": EMBED, "input": ["x"]}, api_key_id=LIMITED)
    assert embed.status == 200


def test_each_batch_item_is_checked(limited, emulator) -> None:
    items = [{"model": SMALL, "messages": [{"role": "user", "content": "a"}]},
             {"model": LARGE, "messages": [{"role": "user", "content": "b"}]}]  # fmt: skip
    answer = limited.request("POST", "/v1/batch/chat/completions", {"requests": items}, api_key_id=LIMITED)
    statuses = [item.get("status") for item in answer.json["data"]]
    assert statuses[0] == 200 and statuses[1] == 403


def test_the_model_list_is_filtered_and_a_card_is_a_403(limited, emulator) -> None:
    listing = limited.request("GET", "/v1/models", api_key_id=LIMITED)
    assert sorted(card["id"] for card in listing.json["data"]) == [EMBED, SMALL]
    everything = limited.request("GET", "/v1/models", api_key_id=FREE).json["data"]
    assert len(everything) > 2
    assert refused(limited.request("GET", f"/v1/models/{LARGE}", api_key_id=LIMITED), LARGE)
    assert limited.request("GET", f"/v1/models/{SMALL}", api_key_id=LIMITED).status == 200


def test_a_fallback_never_serves_a_model_the_key_may_not_use(limited, emulator, monkeypatch, reconfigure) -> None:
    monkeypatch.setenv("FALLBACK_CHAINS", json.dumps({SMALL: [LARGE]}))
    reconfigure()
    emulator.script(*[Fault(status=503)] * 3)  # the key's own model keeps failing
    answer = limited.chat({"model": SMALL, "messages": [{"role": "user", "content": "x"}]}, api_key_id=LIMITED)
    assert answer.status in (502, 503)
    assert not [r for r in emulator.requests if isinstance(r.json, dict) and r.json.get("model") == LARGE]
    reconfigure()  # closed circuits again (the first call opened one)
    emulator.script(*[Fault(status=503)] * 3)
    other = limited.chat({"model": SMALL, "messages": [{"role": "user", "content": "y"}]}, api_key_id=FREE)
    assert other.status == 200 and other.header("X-Served-Model") == LARGE  # the chain works for other keys


def test_an_ended_key_is_refused_even_before_api_gateway_forgets_it(limited, template, emulator) -> None:
    table = template.physical_name("QuotaTable")
    quota_tool.update_item(boto3.client("dynamodb"), table, "key-id-ended", {}, expires_at=0)
    response = limited.chat({"model": SMALL, "messages": [{"role": "user", "content": "x"}]}, api_key_id="key-id-ended")
    assert response.status == 401 and response.json["type"] == "authentication_error"
    assert emulator.calls() == 0
