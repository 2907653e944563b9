"""What Powertools does for the API function, seen from outside: Swagger UI on /docs, the one "request served"
line of every request (errors, 404 and 405 included), and batch items whose log keys stay their own."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway_dev.cloud.apigw import proxy_event
from mistral_gateway.edge.openapi import TITLE

BATCH = "/v1/batch/chat/completions"


def served_lines(gateway: Any) -> list[dict[str, Any]]:
    return [r for r in gateway.log_records() if r.get("message") == "request served"]


def test_docs_is_swagger_ui_over_the_openapi_document(gateway) -> None:
    page = gateway.request("GET", "/docs")
    assert page.status == 200 and page.header("Content-Type") == "text/html"
    assert page.header("Cache-Control") == "public, max-age=3600"
    html = page.text
    assert "SwaggerUIBundle(" in html and TITLE in html
    assert "<script src=" not in html  # the bundle is inlined: no CDN, works offline
    # The document inside the page is the one /openapi.json serves (Powertools gives it at ?format=json).
    inside = gateway.function.invoke(proxy_event("GET", "/docs", query_string="format=json"))
    document = gateway.request("GET", "/openapi.json")
    assert inside["statusCode"] == document.status == 200
    assert json.loads(inside["body"]) == document.json
    assert "/docs" in document.json["paths"] and "requestBody" in document.json["paths"][BATCH]["post"]


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("GET", "/v1/nothing-here", None, 404),
        ("POST", "/nothing", None, 404),
        ("GET", "/v1/chat/completions", None, 405),
        ("POST", "/docs", None, 405),
        ("POST", "/v1/chat/completions", "not json", 400),  # refused by the route's parsing middleware
        ("POST", "/v1/chat/completions", {"model": "mistral-small-latest"}, 422),
    ],
)
def test_every_error_writes_the_one_served_line(gateway, method, path, body, status) -> None:
    response = gateway.request(method, path, body, api_key_id="key-id-7")
    assert response.status == status and response.json["object"] == "error"
    (line,) = served_lines(gateway)
    assert (line["method"], line["status"], line["caller"]) == (method, status, "key-id-7")
    assert line["route"] and line["error_type"] == "invalid_request_error" and line["duration_ms"] >= 0


def test_an_unexpected_error_is_a_json_500_with_its_served_line(gateway, chat_body, monkeypatch) -> None:
    from mistral_gateway.flow import completions

    def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(completions, "chat_completion", broken)
    response = gateway.chat(chat_body("anything"))
    assert response.status == 500 and response.json["object"] == "error"
    (line,) = served_lines(gateway)
    assert line["status"] == 500 and line["method"] == "POST"
    assert any(r["message"] == "unexpected error" for r in gateway.log_records())


def test_batch_items_keys_stay_on_their_own_lines(gateway, emulator, chat_body, monkeypatch, reconfigure) -> None:
    # One worker answers both items in turn: a key the first item set would still be there for the second.
    monkeypatch.setenv("BATCH_CONCURRENCY", "1")
    monkeypatch.setenv("LOG_PROMPTS", "true")  # a miss logs its prompt: a line written inside the item
    reconfigure()
    gateway.chat(chat_body("cached first"))
    gateway.logs.truncate(0)
    gateway.logs.seek(0)

    items = [chat_body("cached first"), chat_body("then a miss", model="open-mistral-nemo")]
    response = gateway.request("POST", BATCH, {"requests": items})
    assert [r["cache"] for r in response.json["data"]] == ["HIT", "MISS"]

    (prompt_line,) = [r for r in gateway.log_records() if r["message"] == "prompt (LOG_PROMPTS is on)"]
    assert prompt_line["model"] == "open-mistral-nemo"
    assert "tokens_from_cache" not in prompt_line and prompt_line.get("cache") != "HIT"  # nothing of item 0
    (line,) = served_lines(gateway)
    assert (line["cache"], line["batch_items"], line["batch_hits"]) == ("BATCH", 2, 1)
    # No item's own keys on the batch's line: its model is none of theirs, its tokens are their sums (spend.py)
    assert "model" not in line
    hit, miss = (item["body"]["usage"] for item in response.json["data"])
    assert (line["prompt_tokens"], line["completion_tokens"]) == (miss["prompt_tokens"], miss["completion_tokens"])
    assert line["tokens_from_cache"] == hit["prompt_tokens"] + hit["completion_tokens"]
    assert [item.get("cache") for item in line["batch_usage"]] == ["HIT", "MISS"]
