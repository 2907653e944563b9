"""Mistral's other routes through the gateway: model cards, cached inference, pass-through, account routes."""

from __future__ import annotations

import pytest

from gateway_dev.emulator.server import Fault

OCR_INLINE = {
    "model": "mistral-ocr-latest",
    "document": {"type": "image_url", "image_url": "data:image/png;base64,AA=="},
}
OCR_REMOTE = {
    "model": "mistral-ocr-latest",
    "document": {"type": "document_url", "document_url": "https://x.test/a.pdf"},
}
MODERATION = {"model": "mistral-moderation-latest", "input": ["plan an attack on the castle", "hello"]}
CLASSIFICATION = {"model": "mistral-classifier-sentiment", "input": "what a lovely day"}


def test_a_model_card_is_served_and_cached_briefly_for_everyone(gateway, emulator) -> None:
    first = gateway.request("GET", "/v1/models/mistral-small-latest", api_key_id="alice")
    second = gateway.request("GET", "/v1/models/mistral-small-latest", api_key_id="bob")
    assert first.status == 200 and first.json["id"] == "mistral-small-latest" and first.json["capabilities"]
    assert (first.header("X-Cache"), second.header("X-Cache")) == ("MISS", "HIT")
    assert second.body == first.body
    assert emulator.calls("/v1/models/mistral-small-latest") == 1


def test_an_unknown_model_card_is_mistrals_404_and_not_cached(gateway, emulator) -> None:
    emulator.accept_any_model = False
    for _ in range(2):
        missing = gateway.request("GET", "/v1/models/no-such-model")
        assert missing.status == 404 and missing.json["type"] == "invalid_model"
    assert emulator.calls("/v1/models/no-such-model") == 2


def test_a_model_off_the_allow_list_is_404_like_an_unknown_one(gateway, emulator, monkeypatch, reconfigure) -> None:
    monkeypatch.setenv("ALLOWED_MODELS", "mistral-small-latest")
    reconfigure()
    hidden = gateway.request("GET", "/v1/models/mistral-large-latest")
    assert (
        hidden.status == 404 and hidden.json["object"] == "error" and "mistral-large-latest" in hidden.json["message"]
    )
    assert emulator.calls("/v1/models/mistral-large-latest") == 0
    assert gateway.request("GET", "/v1/models/mistral-small-latest").status == 200


@pytest.mark.parametrize(
    ("path", "body"),
    [("/v1/ocr", OCR_INLINE), ("/v1/moderations", MODERATION), ("/v1/classifications", CLASSIFICATION)],
)
def test_deterministic_endpoints_are_cached_per_caller_like_chat(gateway, emulator, path, body) -> None:
    first = gateway.request("POST", path, body, api_key_id="alice")
    repeat = gateway.request("POST", path, body, api_key_id="alice")
    other_caller = gateway.request("POST", path, body, api_key_id="bob")
    refreshed = gateway.request("POST", path, body, api_key_id="alice", headers={"Cache-Control": "no-cache"})
    assert first.status == 200 and repeat.body == first.body
    statuses = [r.header("X-Cache") for r in (first, repeat, other_caller, refreshed)]
    assert statuses == ["MISS", "HIT", "MISS", "BYPASS"]
    assert emulator.calls(path) == 3


def test_a_document_behind_a_url_is_never_cached(gateway, emulator) -> None:
    answers = [gateway.request("POST", "/v1/ocr", OCR_REMOTE) for _ in range(2)]
    assert [a.status for a in answers] == [200, 200]
    assert [a.header("X-Cache") for a in answers] == ["BYPASS", "BYPASS"]
    assert answers[0].json["pages"][0]["markdown"].startswith("# Emulated OCR")
    assert emulator.calls("/v1/ocr") == 2


def test_moderation_answers_are_mistrals(gateway, emulator) -> None:
    answer = gateway.request("POST", "/v1/moderations", MODERATION).json
    assert [result["categories"]["violence_and_threats"] for result in answer["results"]] == [True, False]
    chat = {"model": "mistral-moderation-latest", "input": [{"role": "user", "content": "hi"}]}
    assert gateway.request("POST", "/v1/chat/moderations", chat).header("X-Cache") == "MISS"


def test_mistrals_4xx_on_a_cached_route_is_relayed_and_not_cached(gateway, emulator) -> None:
    for _ in range(2):
        refused = gateway.request("POST", "/v1/ocr", {"model": "mistral-ocr-latest"})
        assert refused.status == 422 and refused.json["message"]["detail"][0]["loc"] == ["body", "document"]
    assert emulator.calls("/v1/ocr") == 2


@pytest.mark.parametrize(
    ("fault", "status"),
    [
        (Fault(status=500), 502),
        (Fault(status=501), 502),
        (Fault(status=302), 502),
        (Fault(garbage=True, content_type="text/html"), 502),
        (Fault(garbage=True), 502),
    ],
)
def test_anything_but_a_readable_2xx_or_a_4xx_is_a_502_never_cached(
    gateway, emulator, monkeypatch, fault, status, reconfigure
):
    monkeypatch.setenv("UPSTREAM_MAX_ATTEMPTS", "1")
    reconfigure()
    emulator.script(fault)
    failed = gateway.request("POST", "/v1/moderations", MODERATION)
    assert failed.status == status and failed.json["object"] == "error"
    assert gateway.request("POST", "/v1/moderations", MODERATION).header("X-Cache") == "MISS"


def test_agents_completions_pass_through_byte_for_byte(gateway, emulator, owns) -> None:
    owns("agent", "ag-123")
    body = {"agent_id": "ag-123", "messages": [{"role": "user", "content": "hello agent"}]}
    answer = gateway.request("POST", "/v1/agents/completions", body)
    assert answer.status == 200 and answer.header("X-Cache") is None
    assert int(answer.header("X-Usage-Prompt-Tokens")) == answer.json["usage"]["prompt_tokens"]  # metered
    assert answer.json["choices"][0]["message"]["content"] == "Emulated answer to: hello agent"
    direct = emulator.requests[-1]
    assert direct.headers["authorization"] == "Bearer test-mistral-key-0123456789"  # the gateway's key, injected
    # The body as sent, with the caller's own namespace for Mistral's prompt cache (prompt_cache.py)
    from mistral_gateway.requests import prompt_cache

    assert direct.json == {**body, "prompt_cache_key": prompt_cache.namespaced_key(None, None)}


def test_a_pass_through_4xx_is_relayed_as_sent(gateway, emulator) -> None:
    refused = gateway.request("POST", "/v1/agents/completions", {"messages": []})
    assert refused.status == 422 and refused.json["message"]["detail"][0]["loc"] == ["body", "agent_id"]


def test_a_multipart_upload_passes_through(gateway, emulator) -> None:
    boundary = "gatewayboundary"
    audio = bytes(range(256))  # not UTF-8: API Gateway hands it over base64-encoded
    form = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="model"\r\n\r\nvoxtral-mini-latest\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n'
            "Content-Type: audio/wav\r\n\r\n"
        ).encode()
        + audio
        + f"\r\n--{boundary}--\r\n".encode()
    )
    answer = gateway.request(
        "POST",
        "/v1/audio/transcriptions",
        raw=form,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert gateway.last_result is not None
    assert answer.status == 200 and answer.json["text"].startswith("Emulated transcription of 256 bytes")


ACCOUNT_CALLS = [
    ("GET", "/v1/files"),
    ("DELETE", "/v1/files/f-1"),
    ("POST", "/v1/batch/jobs"),
    ("GET", "/v1/conversations"),
    ("POST", "/v1/agents"),
    ("DELETE", "/v1/models/ft:x"),
]


def test_account_routes_are_refused_when_the_operator_turns_them_off(gateway, emulator, monkeypatch, reconfigure):
    monkeypatch.setenv("ACCOUNT_ROUTES", "off")
    reconfigure()
    for method, path in ACCOUNT_CALLS:
        refused = gateway.request(method, path, {} if method == "POST" else None)
        assert refused.status == 403, path
        assert refused.json["code"] == "account_routes_off" and "AccountRoutes" in refused.json["message"]
    unknown = gateway.request("GET", "/v1/not-a-mistral-route")
    assert unknown.status == 404 and unknown.json["object"] == "error"
    assert emulator.calls() == 0


def test_account_routes_pass_through_for_a_single_tenant(gateway, emulator, monkeypatch, reconfigure) -> None:
    monkeypatch.setenv("ACCOUNT_ROUTES", "shared")
    reconfigure()
    listing = gateway.request("GET", "/v1/files", headers={"Cache-Control": "no-cache"})
    assert listing.status == 200 and listing.json["object"] == "list"
    assert listing.header("X-Cache") is None  # account routes are never cached
    assert emulator.calls("/v1/files") == 1  # Mistral's own (account-wide) list


def test_a_pass_through_is_logged_metered_and_keeps_its_query(gateway, emulator, emitted_metrics) -> None:
    gateway.request("POST", "/v1/moderations", MODERATION)
    served = [r for r in gateway.log_records() if r.get("message") == "request served"]
    assert served[-1]["route"] == "/v1/{proxy+}" and served[-1]["status"] == 200
    assert served[-1]["upstream_route"] == "moderations" and served[-1]["route_policy"] == "cached"
    assert served[-1]["cache"] == "MISS"
    metrics = emitted_metrics()
    assert metrics["UpstreamCalls"] == 1 and metrics["PassThroughRequests"] == 1 and metrics["CacheMiss"] == 1


def test_wrong_methods_on_the_gateways_own_routes_stay_405(gateway, emulator) -> None:
    assert gateway.request("DELETE", "/v1/embeddings").status == 405
    assert emulator.calls() == 0


def test_a_path_that_climbs_out_of_v1_is_refused(gateway, emulator) -> None:
    for path in ("/v1/ocr/../files", "/v1/agents/completions/./x", "/v1/agents//completions"):
        refused = gateway.request("POST", path, OCR_INLINE)
        assert refused.status == 400 and "not a valid path" in refused.json["message"], path
    assert emulator.calls() == 0


def test_cors_headers_are_on_hits_errors_and_pass_throughs(gateway, emulator, chat_body) -> None:
    origin = {"Origin": "https://app.example"}
    answers = [
        gateway.chat(chat_body("cors"), headers=origin),
        gateway.chat(chat_body("cors"), headers=origin),  # a hit
        gateway.chat({"model": "m"}, headers=origin),  # a 422
        gateway.request("GET", "/v1/files", headers=origin),  # a 403
        gateway.request("POST", "/v1/moderations", MODERATION, headers=origin),
    ]
    assert answers[1].header("X-Cache") == "HIT"
    for answer in answers:
        assert answer.header("Access-Control-Allow-Origin") == "*", answer.status
        exposed = answer.header("Access-Control-Expose-Headers") or ""
        assert {"X-Cache", "X-Usage-Prompt-Tokens", "RateLimit-Remaining", "Retry-After"} <= set(exposed.split(","))


def test_the_function_answers_a_preflight_without_a_key(gateway, emulator) -> None:
    headers = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
    preflight = gateway.request("OPTIONS", "/v1/ocr", headers=headers)
    assert preflight.status == 204 and preflight.header("Access-Control-Allow-Origin") == "*"
    assert "POST" in (preflight.header("Access-Control-Allow-Methods") or "")
    assert emulator.calls() == 0


def test_pass_through_and_cached_routes_spend_the_callers_budget(gateway, emulator, owns) -> None:
    from gateway_dev.ops import quota as quota_admin

    owns("agent", "ag-1", "alice")
    quota_admin.set_limits("mistral-gateway-QuotaTable", "alice", {"requests_per_minute": 2})
    agent = {"agent_id": "ag-1", "messages": [{"role": "user", "content": "budgeted"}]}
    first = gateway.request("POST", "/v1/agents/completions", agent, api_key_id="alice")
    second = gateway.request("POST", "/v1/moderations", MODERATION, api_key_id="alice")
    third = gateway.request("POST", "/v1/agents/completions", agent, api_key_id="alice")
    assert (first.status, first.header("RateLimit-Remaining")) == (200, "1")
    assert (second.status, second.header("RateLimit-Remaining")) == (200, "0")
    assert third.status == 429 and third.json["code"] == "quota_exceeded"
    assert emulator.calls("/v1/agents/completions") == 1


def test_the_model_allow_list_holds_on_every_route(gateway, emulator, monkeypatch, reconfigure) -> None:
    monkeypatch.setenv("ALLOWED_MODELS", "mistral-small-latest")
    reconfigure()
    speech = gateway.request("POST", "/v1/audio/speech", {"model": "voxtral-tts", "input": "hello"})
    ocr = gateway.request("POST", "/v1/ocr", OCR_INLINE)
    assert speech.status == ocr.status == 400 and speech.json["code"] == "model_not_allowed"
    assert emulator.calls() == 0
